use warden_sdk::gate::{Submission, Verdict};

#[warden_sdk::gate]
fn evaluate(submission: &Submission) -> Result<Verdict, String> {
    if submission.text.as_deref() == Some("error") {
        return Err("cannot evaluate: asked to fail".to_string());
    }
    let v: Vec<u32> = std::hint::black_box(Vec::new());
    if v.is_empty() {
        panic!("gate exploded on purpose");
    }
    Ok(Verdict::approve(100))
}
