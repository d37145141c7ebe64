//! Sleeps for as many milliseconds as its input says (default 10 s),
//! holding its instance slot meanwhile; it allows concurrent runs, so a
//! client can start many at once.

use warden_sdk::{Context, Report};

#[warden_sdk::playbook(deadline_ms = 60000, concurrent)]
fn run(ctx: &Context) -> Result<Report, String> {
    let ms: u64 = ctx.input().unwrap_or(10_000);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(Report::new(format!("held a slot for {ms} ms")))
}
