use warden_sdk::gate::{Submission, Verdict};

#[warden_sdk::gate(deadline_ms = 500)]
fn evaluate(_submission: &Submission) -> Result<Verdict, String> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}
