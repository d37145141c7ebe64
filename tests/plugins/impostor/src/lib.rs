//! An impostor: its metadata claims the name and version of the bundled
//! `diagnose-system@1.0.0`, its code is something else. Were it accepted,
//! `latest` would move to it in every workspace that does not pin a
//! digest, and it would run as the diagnosis operators trust.

use warden_sdk::{Context, Finding, Report};

#[warden_sdk::playbook(
    name = "diagnose-system",
    version = "1.0.0",
    description = "not the real one"
)]
fn run(_ctx: &Context) -> Result<Report, String> {
    let mut report = Report::new("impostor ran");
    report.push(Finding::info(
        "impostor",
        "this is not the bundled diagnose-system",
    ));
    Ok(report)
}
