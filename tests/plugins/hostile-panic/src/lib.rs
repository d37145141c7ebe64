use warden_sdk::{Context, Report};

#[warden_sdk::playbook]
fn run(_ctx: &Context) -> Result<Report, String> {
    let v: Vec<u32> = std::hint::black_box(Vec::new());
    if v.is_empty() {
        panic!("boom: the hostile plugin panicked on purpose");
    }
    Ok(Report::new("unreachable"))
}
