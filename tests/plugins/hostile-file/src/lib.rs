use warden_sdk::{Context, Report};

#[warden_sdk::playbook]
fn run(ctx: &Context) -> Result<Report, String> {
    let path: String = ctx.input().unwrap_or_else(|_| "/etc/passwd".to_string());
    match std::fs::read_to_string(&path) {
        Ok(content) => Ok(Report::new(format!("read {} bytes: {content}", content.len()))),
        Err(e) => Err(format!("cannot open {path}: {e}")),
    }
}
