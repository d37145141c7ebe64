use warden_sdk::{Context, Report};

#[warden_sdk::playbook(deadline_ms = 60000, idempotent)]
fn run(ctx: &Context) -> Result<Report, String> {
    let ms: u64 = ctx.input().unwrap_or(1000);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(Report::new(format!("slept {ms} ms")))
}
