use warden_sdk::{Context, Report};

#[warden_sdk::playbook(deadline_ms = 500)]
fn run(_ctx: &Context) -> Result<Report, String> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}
