//! Hands the host NUL characters (U+0000) wherever it can: in a log line,
//! in the reason of a mutation, the title and body of a new task, and in
//! its report, or (input `"error"`) in the error it returns. PostgreSQL
//! stores no NUL in `text`, so the host must strip them where it lifts
//! them.

use warden_sdk::{Context, Finding, Report, log, tasks};

#[warden_sdk::playbook(capabilities = ["tasks:read", "tasks:write"], concurrent)]
fn run(ctx: &Context) -> Result<Report, String> {
    log::info("nul\0in a log line");
    if ctx.input::<String>().is_ok_and(|s| s == "error") {
        return Err("nul\0in an error".to_string());
    }
    let mut report = Report::new("nul\0in a summary");
    for task in tasks::list(&tasks::Filter::new()).map_err(|e| e.to_string())? {
        let blocked = tasks::block(&task.id, "nul\0in a reason");
        report.push(Finding::info("nul.block", format!("{blocked:?}")));
    }
    let created = tasks::create(&tasks::NewTask {
        title: "nul\0in a title".into(),
        body: "nul\0in a body".into(),
        priority: "normal".into(),
        dedup_key: None,
    });
    report.push(Finding::warning("nul\0code", format!("{created:?}")).evidence("nul\0evidence"));
    report.manual("nul\0manual");
    Ok(report)
}
