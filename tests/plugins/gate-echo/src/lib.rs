use warden_sdk::gate::{Submission, Verdict};
use warden_sdk::{config, kv, log};

#[warden_sdk::gate(capabilities = ["kv"])]
fn evaluate(submission: &Submission) -> Result<Verdict, warden_sdk::HostError> {
    log::info("gate-echo evaluating");
    println!("stdout of gate-echo");
    let count = kv::get_string("evaluations")?
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    kv::set("evaluations", count.to_string().as_bytes())?;
    let score = config::get_or("score", 90u8);
    let mut verdict = Verdict::approve(score)
        .reason(
            "echo",
            format!(
                "{} {} {} attempt {}",
                submission.workspace, submission.task_id, submission.stage, submission.attempt
            ),
        )
        .reason("count", format!("evaluation {count}"));
    if let Some(stats) = submission.diff_stats_or_count() {
        verdict.push(
            "diff",
            format!(
                "{} file(s), +{} -{}",
                stats.files_changed, stats.insertions, stats.deletions
            ),
        );
    }
    if let Some(tests) = &submission.tests {
        verdict.push(
            "tests",
            format!(
                "{} passed, {} failed, {} skipped: {}",
                tests.passed,
                tests.failed,
                tests.skipped,
                tests.failures.join(", ")
            ),
        );
    }
    for r in &submission.rubric {
        verdict.push(
            "rubric",
            format!("{} {} {}", r.reviewer, r.criterion, r.score),
        );
    }
    for a in &submission.artifacts {
        verdict.push(
            "artifact",
            format!("{} {} {}", a.name, a.media_type, a.content.len()),
        );
    }
    if let Some(text) = &submission.text {
        verdict.push("text", text.clone());
    }
    Ok(verdict)
}
