use warden_sdk::{Context, Finding, Report, tasks};

#[warden_sdk::playbook(capabilities = ["tasks:read", "tasks:write"])]
fn run(_ctx: &Context) -> Result<Report, String> {
    let mut report = Report::new("tried to mutate");
    let listed = tasks::list(&tasks::Filter::new().states(&["running"])).map_err(|e| e.to_string())?;
    for task in listed {
        let answer = tasks::requeue(&task.id, "plan-mutator");
        report.push(Finding::info("requeue", format!("{}: {answer:?}", task.id)));
    }
    let created = tasks::create(&tasks::NewTask {
        title: "made by plan-mutator".into(),
        body: String::new(),
        priority: "normal".into(),
        dedup_key: None,
    });
    report.push(Finding::info("create", format!("{created:?}")));
    if let Ok(id) = created {
        let seen = tasks::get(&id);
        report.push(Finding::info("get-created", format!("{seen:?}")));
    }
    Ok(report)
}
