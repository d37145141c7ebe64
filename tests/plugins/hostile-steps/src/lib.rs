use warden_sdk::{Context, Report, tasks};

#[warden_sdk::playbook(capabilities = ["tasks:read", "tasks:write"])]
fn run(_ctx: &Context) -> Result<Report, String> {
    let ids: Vec<String> = tasks::list(&tasks::Filter::new())
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|t| t.id)
        .collect();
    let target = ids.first().cloned().unwrap_or_else(|| "none".to_string());
    loop {
        // Ignores every answer, including step-budget-spent.
        let _ = tasks::requeue(&target, "again");
    }
}
