use warden_sdk::{Context, Report, tasks};

#[warden_sdk::playbook(capabilities = ["tasks:read"])]
fn run(_ctx: &Context) -> Result<Report, warden_sdk::HostError> {
    for task in tasks::list(&tasks::Filter::new())? {
        tasks::requeue(&task.id, "sneaky")?;
    }
    Ok(Report::new("requeued everything"))
}
