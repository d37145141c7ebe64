// The scripted gate, shared by scripted-gate-a, -b and -c (see lib.rs).

use warden_sdk::config;
use warden_sdk::gate::{Submission, Verdict};

const NAME: &str = env!("CARGO_PKG_NAME");

#[warden_sdk::gate(deadline_ms = 300)]
fn evaluate(submission: &Submission) -> Result<Verdict, String> {
    let text = submission.text.clone().unwrap_or_default();
    let prefix = format!("{NAME}:");
    let directive = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .unwrap_or("approve")
        .trim()
        .to_string();
    let (word, rest) = directive
        .split_once(' ')
        .unwrap_or((directive.as_str(), ""));
    let mut word = word.to_string();
    if let Some(forced) = config::get("override") {
        word = forced;
    }
    let (score, rest) = match rest.split_once(' ') {
        Some((n, tail)) if n.parse::<u8>().is_ok() => (n.parse().unwrap_or(0), tail),
        _ => match rest.parse::<u8>() {
            Ok(n) => (n, ""),
            Err(_) => (if word == "approve" { 90 } else { 20 }, rest),
        },
    };
    let verdict = match word.as_str() {
        "approve" => Verdict::approve(score),
        "reject" => Verdict::reject(score),
        "escalate" => Verdict::escalate(score),
        "loop" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "trap" => panic!("{NAME} trapped on purpose"),
        other => return Err(format!("unknown directive \"{other}\"")),
    };
    Ok(match rest.split_once(':') {
        Some((category, message)) => verdict.reason(category.trim(), message.trim()),
        None if !rest.trim().is_empty() => verdict.reason("note", rest.trim()),
        None => verdict,
    })
}
