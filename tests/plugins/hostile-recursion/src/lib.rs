use warden_sdk::{Context, Report};

#[inline(never)]
#[expect(unconditional_recursion, reason = "the point of this plugin")]
fn dive(depth: u64, pad: [u64; 16]) -> u64 {
    let pad = std::hint::black_box(pad);
    dive(depth + 1, pad) + pad[(depth % 16) as usize]
}

#[warden_sdk::playbook]
fn run(_ctx: &Context) -> Result<Report, String> {
    Ok(Report::new(format!("{}", dive(0, [1; 16]))))
}
