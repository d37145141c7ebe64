//! Error fingerprints (SPEC LG-2, TS-6): an error line normalized into a
//! template (numbers, hex, UUIDs, timestamps, paths and quoted values
//! replaced by placeholders), and a short hash of that template. Two
//! failures with the same fingerprint are "the same failure".

use sha2::{Digest, Sha256};

/// The template of an error line.
pub fn template(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let chars: Vec<char> = line.trim().chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Quoted values.
        if (c == '"' || c == '\'' || c == '`')
            && let Some(end) = chars[i + 1..].iter().position(|&d| d == c)
        {
            out.push_str("<str>");
            i += end + 2;
            continue;
        }
        // Paths: a slash starting a run of non-space characters.
        if c == '/'
            && (i == 0
                || chars[i - 1].is_whitespace()
                || chars[i - 1] == '('
                || chars[i - 1] == '=')
        {
            let end = chars[i..]
                .iter()
                .position(|d| d.is_whitespace() || *d == ')' || *d == ',')
                .unwrap_or(chars.len() - i);
            if end > 1 {
                out.push_str("<path>");
                i += end;
                continue;
            }
        }
        // Words: numbers, hex and UUID-like tokens become placeholders.
        if c.is_ascii_alphanumeric() {
            let end = chars[i..]
                .iter()
                .position(|d| {
                    !(d.is_ascii_alphanumeric() || *d == '-' || *d == '.' || *d == ':' || *d == '_')
                })
                .unwrap_or(chars.len() - i);
            let word: String = chars[i..i + end].iter().collect();
            out.push_str(&classify(&word));
            i += end;
            continue;
        }
        if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    out.trim().to_string()
}

/// A word of an error line as it appears in the template.
fn classify(word: &str) -> String {
    let trimmed = word.trim_end_matches(['.', ':']);
    let suffix = &word[trimmed.len()..];
    let is_uuid = trimmed.len() == 36
        && trimmed.chars().filter(|c| *c == '-').count() == 4
        && trimmed.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    let is_hex = (trimmed.starts_with("0x")
        && trimmed.len() > 2
        && trimmed[2..].chars().all(|c| c.is_ascii_hexdigit()))
        || (trimmed.len() >= 8
            && trimmed.chars().all(|c| c.is_ascii_hexdigit())
            && trimmed.chars().any(|c| c.is_ascii_digit()));
    let is_number = !trimmed.is_empty()
        && trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ':' | '-' | '_'))
        && trimmed.chars().any(|c| c.is_ascii_digit());
    let is_timestamp = trimmed.len() >= 10
        && trimmed.chars().take(4).all(|c| c.is_ascii_digit())
        && trimmed.chars().nth(4) == Some('-')
        && trimmed.contains('T');
    if is_uuid {
        format!("<uuid>{suffix}")
    } else if is_timestamp {
        format!("<time>{suffix}")
    } else if is_hex {
        format!("<hex>{suffix}")
    } else if is_number {
        format!("<num>{suffix}")
    } else {
        // Words with embedded digits (e.g. `task-42`) keep their letters.
        let mut w = String::new();
        let mut in_digits = false;
        for c in word.chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    w.push_str("<n>");
                }
                in_digits = true;
            } else {
                in_digits = false;
                w.push(c.to_ascii_lowercase());
            }
        }
        w
    }
}

/// The fingerprint: the first 16 hex digits of the SHA-256 of the template
/// of the error's first non-empty line (a stack trace's later lines vary
/// more than its headline).
pub fn fingerprint(error: &str) -> String {
    let headline = error.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let digest = Sha256::digest(template(headline).as_bytes());
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_parts_become_placeholders() {
        assert_eq!(
            template(
                "connection to 10.0.0.12:5432 refused after 3 attempts at 2026-11-22T03:40:00Z"
            ),
            "connection to <num> refused after <num> attempts at <time>"
        );
        assert_eq!(
            template(
                "task 0f8fad5b-d9cb-469f-a165-70867728950e failed: file \"/tmp/x.rs\" not found in /srv/app/src/main.rs"
            ),
            "task <uuid> failed: file <str> not found in <path>"
        );
        assert_eq!(
            template("segfault at 0x7ffd5e8c deadbeef00"),
            "segfault at <hex> <hex>"
        );
    }

    #[test]
    fn same_failure_same_fingerprint() {
        let a =
            fingerprint("timeout after 30s calling tool 'cargo test' on worker-7\n   at frame 1");
        let b =
            fingerprint("timeout after 45s calling tool 'cargo build' on worker-12\n   at frame 9");
        let c = fingerprint("compilation failed: 3 errors");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 16);
    }
}
