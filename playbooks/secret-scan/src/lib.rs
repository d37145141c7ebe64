//! `secret-scan`: rejects a change that adds credentials (SPEC QG-5).
//!
//! Only the lines a change adds are scanned (lines of the unified diff's
//! hunks that start with `+`; `+++` file headers are not lines). What it
//! finds:
//!
//! | kind | pattern |
//! |---|---|
//! | AWS access key id | `AKIA` or `ASIA` and 16 upper-case letters or digits, as a whole word |
//! | AWS secret access key | 40 base64 characters (mixed case) on a line that names an AWS secret (`aws_secret_access_key`, `AWS_SECRET`, `SecretAccessKey`, ...) or right below one |
//! | private key | a `-----BEGIN … PRIVATE KEY-----` line followed by key material (base64 on the same line or the next ones), not a mere mention of the header |
//! | GitHub token | `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and 36 or more letters and digits; `github_pat_` and 82 or more letters, digits and `_` |
//! | Slack token | `xoxb-`, `xoxa-`, `xoxp-`, `xoxr-`, `xoxs-` and 15 or more letters, digits and `-`, with a digit |
//! | Slack webhook | `hooks.slack.com/services/T…/B…/…` with full-length ids |
//!
//! A match whose random part is a placeholder (fewer than 4 distinct
//! characters, such as `ghp_xxxx…` or `XXXXXXXX`) is not a finding. AWS's
//! documented example key `AKIAIOSFODNN7EXAMPLE` *is* reported, like any
//! real key: a scanner cannot tell a pasted example from a real key of the
//! same shape. Allow such strings explicitly.
//!
//! Each finding is a reason of category `secret` naming the file, the line
//! and the kind, with the secret masked (its well-known prefix and its
//! length only). Any finding rejects the change with score 0.
//!
//! Config (warden.toml `[workspaces.<ws>.plugins.secret-scan.config]`):
//!
//! - `allow` (empty): exact strings that are never reported, e.g.
//!   `["AKIAIOSFODNN7EXAMPLE"]`;
//! - `ignore_paths` (empty): files not scanned: `dir/` (a directory), `*.ext`
//!   (a suffix) or an exact path, e.g. `["tests/fixtures/", "*.pem.example"]`.

use warden_sdk::config;
use warden_sdk::gate::{DiffLine, Submission, Verdict};

/// Reasons carry this category.
const CATEGORY: &str = "secret";

/// Findings named one by one; the rest are counted.
const MAX_REASONS: usize = 50;

/// One credential in an added line.
#[derive(Debug, PartialEq, Eq)]
struct Hit {
    kind: &'static str,
    /// What the reason shows: the masked secret, or the key's header.
    shown: String,
    /// The matched text, for the allow-list.
    matched: String,
}

#[warden_sdk::gate]
fn evaluate(submission: &Submission) -> Result<Verdict, String> {
    let allow = config::get_list("allow");
    let ignore = config::get_list("ignore_paths");
    let Some(diff) = submission.diff.as_deref() else {
        return Ok(Verdict::approve(100).reason(CATEGORY, "no diff was submitted: nothing to scan"));
    };
    let files = warden_sdk::gate::parse_diff(diff);

    let mut findings = Vec::new();
    let mut scanned_lines = 0usize;
    let mut scanned_files = 0usize;
    for file in &files {
        if ignored(&file.path, &ignore) {
            continue;
        }
        scanned_files += 1;
        scanned_lines += file.added.len();
        for (i, line) in file.added.iter().enumerate() {
            for hit in scan_line(&file.added, i) {
                if allow.contains(&hit.matched) {
                    continue;
                }
                findings.push(format!(
                    "{}:{}: {} {}",
                    file.path, line.line, hit.kind, hit.shown
                ));
            }
        }
    }

    if findings.is_empty() {
        return Ok(Verdict::approve(100).reason(
            CATEGORY,
            format!("no secrets in {scanned_lines} added line(s) of {scanned_files} file(s)"),
        ));
    }
    let mut verdict = Verdict::reject(0);
    for finding in findings.iter().take(MAX_REASONS) {
        verdict.push(CATEGORY, finding.clone());
    }
    if findings.len() > MAX_REASONS {
        verdict.push(
            CATEGORY,
            format!("and {} more secret(s)", findings.len() - MAX_REASONS),
        );
    }
    verdict.push(
        CATEGORY,
        "remove the secrets from the change, rotate them (they were exposed), and load them from the environment or a secret store",
    );
    Ok(verdict)
}

/// True when `path` matches one of the `ignore_paths` patterns.
fn ignored(path: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        if let Some(suffix) = p.strip_prefix('*') {
            path.ends_with(suffix)
        } else if p.ends_with('/') {
            path.starts_with(p.as_str())
        } else {
            path == p
        }
    })
}

/// The credentials in added line `i` of a file (the lines around it give
/// context: a secret's name above it, a key's material below it).
fn scan_line(lines: &[DiffLine], i: usize) -> Vec<Hit> {
    let Some(line) = lines.get(i) else {
        return Vec::new();
    };
    let text = line.text.as_str();
    let mut hits = Vec::new();
    // Most lines hold none of what the detectors look for: one pass over
    // the line says which of them can find anything.
    let may = Anchors::of(text);
    if may.aws_key_id {
        aws_key_ids(text, &mut hits);
    }
    if may.run_of_40 {
        // The line right above in the new file, when it was added too.
        let above = i
            .checked_sub(1)
            .and_then(|j| lines.get(j))
            .filter(|l| l.line.checked_add(1) == Some(line.line))
            .map(|l| l.text.as_str());
        aws_secret_keys(text, above, &mut hits);
    }
    if may.key_header {
        // The lines right below in the new file, when they were added too.
        let below: Vec<&str> = lines[i + 1..]
            .iter()
            .zip(1u32..)
            .take_while(|(l, n)| line.line.checked_add(*n) == Some(l.line))
            // Enough for PEM's `Proc-Type` and `DEK-Info` headers, or PGP's
            // `Version` header and blank line, before the material.
            .take(4)
            .map(|(l, _)| l.text.as_str())
            .collect();
        private_keys(text, &below, &mut hits);
    }
    if may.github {
        github_tokens(text, &mut hits);
    }
    if may.slack_token {
        slack_tokens(text, &mut hits);
    }
    if may.slack_webhook {
        slack_webhooks(text, &mut hits);
    }
    hits
}

/// Which detectors can find something in a line: each flag is a necessary
/// condition of its detector's match (a prefix it starts with, or for an
/// AWS secret key a run of exactly 40 base64 characters), found in one
/// pass.
#[derive(Debug, Default, PartialEq, Eq)]
struct Anchors {
    aws_key_id: bool,
    run_of_40: bool,
    key_header: bool,
    github: bool,
    slack_token: bool,
    slack_webhook: bool,
}

impl Anchors {
    fn of(text: &str) -> Anchors {
        let bytes = text.as_bytes();
        let mut may = Anchors::default();
        // The length of the current run of base64 characters.
        let mut run = 0usize;
        for (i, &b) in bytes.iter().enumerate() {
            if is_base64(b) {
                run += 1;
            } else {
                may.run_of_40 |= run == 40;
                run = 0;
            }
            let rest = &bytes[i..];
            match b {
                b'A' => may.aws_key_id |= rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA"),
                b'-' => may.key_header |= rest.starts_with(b"-----BEGIN "),
                b'g' => may.github |= rest.starts_with(b"gh") || rest.starts_with(b"github_pat_"),
                b'x' => may.slack_token |= rest.starts_with(b"xox"),
                b'h' => may.slack_webhook |= rest.starts_with(b"hooks.slack.com/services/"),
                _ => {}
            }
        }
        may.run_of_40 |= run == 40;
        may
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Fewer than 4 distinct characters: `xxxx`, `0000`, `XXXX`, `abab`.
fn placeholder(random: &str) -> bool {
    let mut seen = [false; 256];
    let mut distinct = 0;
    for b in random.bytes() {
        if !seen[usize::from(b)] {
            seen[usize::from(b)] = true;
            distinct += 1;
        }
    }
    distinct < 4
}

/// `ghp_… (40 characters)`: the public prefix and the length, nothing of
/// the secret part.
fn mask(secret: &str, prefix_len: usize) -> String {
    let prefix = secret.get(..prefix_len).unwrap_or("");
    format!("({prefix}…, {} characters)", secret.chars().count())
}

/// Byte offsets of every occurrence of `needle` in `text`.
fn occurrences<'a>(text: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.match_indices(needle).map(|(i, _)| i)
}

/// The end of the run of bytes satisfying `class` that starts at `start`.
fn run_end(bytes: &[u8], start: usize, class: fn(u8) -> bool) -> usize {
    let mut end = start;
    while end < bytes.len() && class(bytes[end]) {
        end += 1;
    }
    end
}

fn aws_key_ids(text: &str, hits: &mut Vec<Hit>) {
    let bytes = text.as_bytes();
    for prefix in ["AKIA", "ASIA"] {
        for start in occurrences(text, prefix) {
            if start > 0 && is_alnum(bytes[start - 1]) {
                continue;
            }
            let end = start + 20;
            if end > bytes.len() {
                continue;
            }
            let body = &bytes[start + 4..end];
            if !body
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            {
                continue;
            }
            if end < bytes.len() && is_alnum(bytes[end]) {
                continue;
            }
            let key = &text[start..end];
            if placeholder(&key[4..]) {
                continue;
            }
            hits.push(Hit {
                kind: "AWS access key id",
                shown: mask(key, 4),
                matched: key.to_string(),
            });
        }
    }
}

/// True when the line names an AWS secret access key, in any of the usual
/// spellings (`aws_secret_access_key`, `AWS-SECRET-KEY`, `SecretAccessKey`).
fn names_aws_secret(text: &str) -> bool {
    let squashed: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    squashed.contains("secretaccesskey") || squashed.contains("awssecret")
}

fn aws_secret_keys(text: &str, above: Option<&str>, hits: &mut Vec<Hit>) {
    if !names_aws_secret(text) && !above.is_some_and(names_aws_secret) {
        return;
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_base64(bytes[i]) {
            i += 1;
            continue;
        }
        let end = run_end(bytes, i, is_base64);
        let candidate = &text[i..end];
        let mixed = candidate.bytes().any(|b| b.is_ascii_uppercase())
            && candidate.bytes().any(|b| b.is_ascii_lowercase())
            && candidate
                .bytes()
                .any(|b| b.is_ascii_digit() || b == b'+' || b == b'/');
        if end - i == 40 && mixed && !placeholder(candidate) {
            hits.push(Hit {
                kind: "AWS secret access key",
                shown: mask(candidate, 0),
                matched: candidate.to_string(),
            });
        }
        i = end;
    }
}

/// Key material: a run of at least 32 base64 characters.
fn has_key_material(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let end = run_end(bytes, i, |b| is_base64(b) || b == b'=');
        if end - i >= 32 {
            return true;
        }
        i = end.max(i + 1);
    }
    false
}

fn private_keys(text: &str, below: &[&str], hits: &mut Vec<Hit>) {
    for start in occurrences(text, "-----BEGIN ") {
        let label_start = start + "-----BEGIN ".len();
        let Some(label_len) = text[label_start..].find("-----") else {
            continue;
        };
        let label = &text[label_start..label_start + label_len];
        if !label.contains("PRIVATE KEY") {
            continue;
        }
        let header_end = label_start + label_len + "-----".len();
        // The header alone is often just a constant in code that parses
        // keys; a key has material after it, on the same line (a string
        // with `\n` escapes) or on the lines below.
        let material = has_key_material(&text[header_end..])
            || below.iter().any(|l| {
                let l = l.trim();
                has_key_material(l) && l.bytes().all(|b| is_base64(b) || b == b'=')
            });
        if material {
            let header = &text[start..header_end];
            hits.push(Hit {
                kind: "private key",
                shown: format!("({header})"),
                matched: header.to_string(),
            });
        }
    }
}

fn github_tokens(text: &str, hits: &mut Vec<Hit>) {
    let bytes = text.as_bytes();
    let classes = |s: &str| {
        [
            s.bytes().any(|b| b.is_ascii_uppercase()),
            s.bytes().any(|b| b.is_ascii_lowercase()),
            s.bytes().any(|b| b.is_ascii_digit()),
        ]
        .iter()
        .filter(|c| **c)
        .count()
    };
    for prefix in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
        for start in occurrences(text, prefix) {
            if start > 0 && is_word(bytes[start - 1]) {
                continue;
            }
            let body_start = start + prefix.len();
            let end = run_end(bytes, body_start, is_alnum);
            // A `_` right after would make it part of a longer identifier.
            if end - body_start < 36 || (end < bytes.len() && bytes[end] == b'_') {
                continue;
            }
            let body = &text[body_start..end];
            if classes(body) < 2 || placeholder(body) {
                continue;
            }
            let token = &text[start..end];
            hits.push(Hit {
                kind: "GitHub token",
                shown: mask(token, prefix.len()),
                matched: token.to_string(),
            });
        }
    }
    for start in occurrences(text, "github_pat_") {
        if start > 0 && is_word(bytes[start - 1]) {
            continue;
        }
        let body_start = start + "github_pat_".len();
        let end = run_end(bytes, body_start, is_word);
        let body = &text[body_start..end];
        if end - body_start < 82 || classes(body) < 2 || placeholder(body) {
            continue;
        }
        let token = &text[start..end];
        hits.push(Hit {
            kind: "GitHub fine-grained token",
            shown: mask(token, "github_pat_".len()),
            matched: token.to_string(),
        });
    }
}

fn slack_tokens(text: &str, hits: &mut Vec<Hit>) {
    let bytes = text.as_bytes();
    for start in occurrences(text, "xox") {
        if start > 0 && is_alnum(bytes[start - 1]) {
            continue;
        }
        let Some(&kind) = bytes.get(start + 3) else {
            continue;
        };
        if !matches!(kind, b'b' | b'a' | b'p' | b'r' | b's') || bytes.get(start + 4) != Some(&b'-')
        {
            continue;
        }
        let body_start = start + 5;
        let end = run_end(bytes, body_start, |b| is_alnum(b) || b == b'-');
        let body = &text[body_start..end];
        if body.len() < 15 || !body.bytes().any(|b| b.is_ascii_digit()) || placeholder(body) {
            continue;
        }
        let token = &text[start..end];
        hits.push(Hit {
            kind: "Slack token",
            shown: mask(token, 5),
            matched: token.to_string(),
        });
    }
}

fn slack_webhooks(text: &str, hits: &mut Vec<Hit>) {
    const HOST: &str = "hooks.slack.com/services/";
    let bytes = text.as_bytes();
    for start in occurrences(text, HOST) {
        let mut at = start + HOST.len();
        let mut segments = Vec::new();
        for _ in 0..3 {
            let end = run_end(bytes, at, is_alnum);
            segments.push(&text[at..end]);
            at = end + 1;
            if bytes.get(end) != Some(&b'/') {
                break;
            }
        }
        let [team, bot, secret] = segments[..] else {
            continue;
        };
        let full = team.starts_with('T')
            && team.len() >= 8
            && bot.starts_with('B')
            && bot.len() >= 8
            && secret.len() >= 16;
        if !full || placeholder(secret) {
            continue;
        }
        let scheme = ["https://", "http://"]
            .into_iter()
            .find(|s| text[..start].ends_with(s))
            .unwrap_or("");
        let url_start = start - scheme.len();
        let url_end = start + HOST.len() + team.len() + bot.len() + secret.len() + 2;
        let url = &text[url_start..url_end];
        hits.push(Hit {
            kind: "Slack webhook URL",
            shown: format!("({scheme}{HOST}…, {} characters)", url.len()),
            matched: url.to_string(),
        });
    }
}
