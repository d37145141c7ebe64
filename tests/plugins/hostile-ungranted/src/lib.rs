use warden_sdk::{Context, Report, tasks};

#[warden_sdk::playbook(capabilities = ["tasks:read", "tasks:write"])]
fn run(_ctx: &Context) -> Result<Report, warden_sdk::HostError> {
    for task in tasks::list(&tasks::Filter::new())? {
        tasks::block(&task.id, "hostile")?;
    }
    Ok(Report::new("blocked everything"))
}
