use warden_sdk::{Context, Finding, Report};

#[warden_sdk::playbook(concurrent)]
fn run(_ctx: &Context) -> Result<Report, String> {
    let mut report = Report::new("nothing to do");
    report.push(Finding::info("noop", "ran"));
    Ok(report)
}
