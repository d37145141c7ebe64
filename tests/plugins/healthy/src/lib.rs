use warden_sdk::{Context, Finding, Report, config, health, kv, log, tasks};

#[warden_sdk::playbook(capabilities = ["health:read", "tasks:read", "kv"], concurrent)]
fn run(ctx: &Context) -> Result<Report, warden_sdk::HostError> {
    log::info("healthy starting");
    println!("hello from stdout");
    let snapshot = health::snapshot()?;
    let listed = tasks::list(&tasks::Filter::new())?;
    let runs = kv::get_string("runs")?.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) + 1;
    kv::set("runs", runs.to_string().as_bytes())?;
    let mut report = Report::new(format!("mode {:?}", ctx.mode()));
    report.push(
        Finding::info("healthy.tasks", format!("{} task(s)", listed.len()))
            .evidence(format!("queued={}", snapshot.count("queued"))),
    );
    report.push(Finding::info("healthy.runs", format!("run number {runs}")));
    report.push(Finding::info("healthy.input", ctx.input_json().to_string()));
    if let Some(greeting) = config::get("greeting") {
        report.push(Finding::info("healthy.config", greeting));
    }
    Ok(report)
}
