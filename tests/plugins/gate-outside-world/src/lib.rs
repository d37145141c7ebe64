use warden_sdk::gate::{Submission, Verdict};
use warden_sdk::tasks;

#[warden_sdk::gate]
fn evaluate(_submission: &Submission) -> Result<Verdict, String> {
    // The SDK's `tasks` module belongs to the playbook world; calling it
    // from a gate makes the component import `warden:plugin/tasks`.
    let listed = tasks::list(&tasks::Filter::new()).map_err(|e| e.to_string())?;
    Ok(Verdict::approve(100).reason("tasks", format!("{} task(s)", listed.len())))
}
