use warden_sdk::{Context, Report, tasks};

/// Input: the size in bytes of the reason it gives (default: "again").
#[warden_sdk::playbook(capabilities = ["tasks:read", "tasks:write"])]
fn run(ctx: &Context) -> Result<Report, String> {
    let ids: Vec<String> = tasks::list(&tasks::Filter::new())
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|t| t.id)
        .collect();
    let target = ids.first().cloned().unwrap_or_else(|| "none".to_string());
    let reason = match ctx.input::<usize>() {
        Ok(bytes) => "r".repeat(bytes),
        Err(_) => "again".to_string(),
    };
    loop {
        // Ignores every answer, including step-budget-spent.
        let _ = tasks::requeue(&target, &reason);
    }
}
