//! A small parser of unified diffs (`git diff`, `diff -u`), enough for a
//! gate to count changes and to look at added lines with their file and
//! line number.
//!
//! Hunk bodies are read by the line counts of their `@@` headers, so an
//! added line whose text starts with `++` (shown as `+++`) is read as an
//! added line, not as a file header. Binary files count as changed files
//! without lines. Malformed input never fails: what cannot be read is
//! skipped.

/// One line that the change added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffLine {
    /// Line number in the new file, from 1.
    pub line: u32,
    /// The text, without the leading `+`.
    pub text: String,
}

/// The changes to one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffFile {
    /// The path after the change (before it, for a deleted file), without
    /// git's `a/` and `b/` prefixes.
    pub path: String,
    /// The path before the change, when the file was renamed.
    pub renamed_from: Option<String>,
    /// Lines added.
    pub insertions: u32,
    /// Lines removed.
    pub deletions: u32,
    /// The added lines, in order.
    pub added: Vec<DiffLine>,
    /// True for a binary file (no lines).
    pub binary: bool,
}

/// Where the parser is.
enum State {
    /// Between files, or in a file's header lines.
    Header,
    /// Inside a hunk, with this many old and new lines left to read.
    Hunk {
        old_left: u32,
        new_left: u32,
        new_line: u32,
    },
}

/// Splits a unified diff into its files.
pub fn parse_diff(text: &str) -> Vec<DiffFile> {
    let mut files: Vec<DiffFile> = Vec::new();
    let mut state = State::Header;
    // `---` opens a new file in a plain `diff -u` (no `diff --git` line);
    // after `diff --git` it belongs to the file already opened.
    let mut opened_by_git = false;
    let mut old_path: Option<String> = None;

    for raw in text.lines() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let State::Hunk {
            old_left,
            new_left,
            new_line,
        } = &mut state
            && let Some(file) = files.last_mut()
        {
            let in_hunk = match line.as_bytes().first() {
                Some(b'+') if *new_left > 0 => {
                    file.insertions = file.insertions.saturating_add(1);
                    file.added.push(DiffLine {
                        line: *new_line,
                        text: line[1..].to_string(),
                    });
                    *new_left -= 1;
                    *new_line = new_line.saturating_add(1);
                    true
                }
                Some(b'-') if *old_left > 0 => {
                    file.deletions = file.deletions.saturating_add(1);
                    *old_left -= 1;
                    true
                }
                // A context line; some tools strip the space of an empty one.
                Some(b' ') | None if *old_left > 0 && *new_left > 0 => {
                    *old_left -= 1;
                    *new_left -= 1;
                    *new_line = new_line.saturating_add(1);
                    true
                }
                // "\ No newline at end of file"
                Some(b'\\') => true,
                // The counts were wrong: read the line as a header.
                _ => false,
            };
            if in_hunk {
                if *old_left == 0 && *new_left == 0 {
                    state = State::Header;
                }
                continue;
            }
            state = State::Header;
        }

        if let Some(rest) = line.strip_prefix("diff --git ") {
            files.push(DiffFile {
                path: git_header_path(rest).unwrap_or_default(),
                ..DiffFile::default()
            });
            opened_by_git = true;
            old_path = None;
        } else if let Some(rest) = line.strip_prefix("--- ") {
            if !opened_by_git {
                files.push(DiffFile::default());
            }
            // The next plain `---` opens another file.
            opened_by_git = false;
            old_path = header_path(rest);
        } else if let Some(rest) = line.strip_prefix("+++ ") {
            if let Some(file) = files.last_mut() {
                match header_path(rest) {
                    Some(path) => file.path = path,
                    None => {
                        if let Some(old) = &old_path {
                            file.path.clone_from(old);
                        }
                    }
                }
            }
        } else if let Some(rest) = line.strip_prefix("rename from ") {
            if let Some(file) = files.last_mut() {
                file.renamed_from = Some(rest.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("rename to ") {
            if let Some(file) = files.last_mut() {
                file.path = rest.to_string();
            }
        } else if line.starts_with("Binary files ") || line == "GIT binary patch" {
            if let Some(file) = files.last_mut() {
                file.binary = true;
            }
        } else if let Some(rest) = line.strip_prefix("@@ ") {
            if files.is_empty() {
                // A bare hunk without file headers.
                files.push(DiffFile::default());
            }
            opened_by_git = false;
            if let Some((old_left, new_line, new_left)) = hunk_header(rest) {
                state = if old_left == 0 && new_left == 0 {
                    State::Header
                } else {
                    State::Hunk {
                        old_left,
                        new_left,
                        new_line,
                    }
                };
            }
        }
    }
    files
}

/// `-12,5 +12,7 @@ fn context` → (old count 5, new start 12, new count 7).
/// A missing count is 1.
fn hunk_header(rest: &str) -> Option<(u32, u32, u32)> {
    let mut parts = rest.split_whitespace();
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    let range = |s: &str| -> Option<(u32, u32)> {
        match s.split_once(',') {
            Some((start, count)) => Some((start.parse().ok()?, count.parse().ok()?)),
            None => Some((s.parse().ok()?, 1)),
        }
    };
    let (_, old_left) = range(old)?;
    let (new_line, new_left) = range(new)?;
    Some((old_left, new_line, new_left))
}

/// The path of a `---` or `+++` line: `None` for `/dev/null`; git's `a/`
/// or `b/` prefix and a trailing timestamp (`diff -u`) removed.
fn header_path(rest: &str) -> Option<String> {
    let path = rest.split('\t').next().unwrap_or(rest).trim_end();
    let path = unquote(path);
    if path == "/dev/null" {
        return None;
    }
    let path = path
        .strip_prefix("a/")
        .or_else(|| path.strip_prefix("b/"))
        .unwrap_or(&path);
    Some(path.to_string())
}

/// The new path of `diff --git a/x b/x`, for files without `+++` lines
/// (binary files, pure renames, mode changes).
fn git_header_path(rest: &str) -> Option<String> {
    let rest = rest.trim_end();
    if rest.starts_with('"') {
        // Quoted paths: take the last quoted one.
        let start = rest.rfind(" \"")?;
        return header_path(&rest[start + 1..]);
    }
    // `a/<p> b/<p>`: with equal paths the split point is the middle.
    let bytes = rest.len();
    if bytes % 2 == 1 {
        let (a, b) = rest.split_at(bytes / 2);
        if a.strip_prefix("a/") == b.strip_prefix(" b/") {
            return header_path(b.trim_start());
        }
    }
    let start = rest.rfind(" b/")?;
    header_path(&rest[start + 1..])
}

/// Removes git's C-style quotes around a path with unusual characters.
fn unquote(path: &str) -> String {
    match path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIT: &str = "\
diff --git a/src/lib.rs b/src/lib.rs
index 83db48f..bf269f4 100644
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,4 +1,5 @@
 use std::fmt;
-use std::io;
+use std::io::{self, Read};
+++counter;
 
 fn main() {}
diff --git a/README.md b/README.md
new file mode 100644
--- /dev/null
+++ b/README.md
@@ -0,0 +1,2 @@
+# Title
+text
\\ No newline at end of file
diff --git a/old.txt b/old.txt
deleted file mode 100644
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-gone
diff --git a/logo.png b/logo.png
Binary files a/logo.png and b/logo.png differ
diff --git a/a.rs b/b.rs
similarity index 90%
rename from a.rs
rename to b.rs
";

    #[test]
    fn git_diff_files_counts_and_added_lines() {
        let files = parse_diff(GIT);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["src/lib.rs", "README.md", "old.txt", "logo.png", "b.rs"]
        );
        let lib = &files[0];
        assert_eq!((lib.insertions, lib.deletions), (2, 1));
        assert_eq!(
            lib.added,
            vec![
                DiffLine {
                    line: 2,
                    text: "use std::io::{self, Read};".into()
                },
                // An added line whose text starts with `++` is content.
                DiffLine {
                    line: 3,
                    text: "++counter;".into()
                },
            ]
        );
        assert_eq!(files[1].insertions, 2);
        assert_eq!(files[1].added[1].line, 2);
        assert_eq!((files[2].insertions, files[2].deletions), (0, 1));
        assert!(files[3].binary);
        assert_eq!(files[4].renamed_from.as_deref(), Some("a.rs"));
    }

    #[test]
    fn plain_diff_u_with_timestamps_and_several_hunks() {
        let text = "\
--- app.py\t2026-01-01 10:00:00
+++ app.py\t2026-01-02 10:00:00
@@ -10,2 +10,3 @@
 def f():
+    return 1
     pass
@@ -40 +41 @@
-x = 1
+x = 2
--- other.py
+++ other.py
@@ -1 +1 @@
-a
+b
";
        let files = parse_diff(text);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "app.py");
        assert_eq!((files[0].insertions, files[0].deletions), (2, 1));
        assert_eq!(files[0].added[0].line, 11);
        assert_eq!(files[0].added[1].line, 41);
        assert_eq!(files[1].path, "other.py");
        assert_eq!(files[1].added[0].text, "b");
    }

    #[test]
    fn garbage_and_empty_input_never_fail() {
        assert!(parse_diff("").is_empty());
        assert!(parse_diff("hello\nworld\n").is_empty());
        let files = parse_diff("@@ -1,9 +1,9 @@\n+x\n");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].insertions, 1);
        let files = parse_diff("diff --git \"a/with space.txt\" \"b/with space.txt\"\n");
        assert_eq!(files[0].path, "with space.txt");
        let files = parse_diff("diff --git a/x y b/x y\n");
        assert_eq!(files[0].path, "x y");
    }

    #[test]
    fn crlf_lines_are_read_like_lf() {
        let files = parse_diff("--- a/x\r\n+++ b/x\r\n@@ -1 +1 @@\r\n-a\r\n+b\r\n");
        assert_eq!(files[0].path, "x");
        assert_eq!(files[0].added[0].text, "b");
    }
}
