use warden_sdk::{Context, Finding, Report};

#[warden_sdk::playbook]
fn run(_ctx: &Context) -> Result<Report, String> {
    let mut report = Report::new("x".repeat(1 << 20));
    for i in 0..4096 {
        report.push(Finding::info("big", format!("{i:01024}")));
    }
    Ok(report)
}
