use warden_sdk::{Context, Report};

#[warden_sdk::playbook]
fn run(_ctx: &Context) -> Result<Report, String> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // 1 MiB at a time, touched so that it is really committed.
        hoard.push(vec![0xAB; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}
