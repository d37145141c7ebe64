use warden_sdk::gate::{Decision, Submission, Verdict};

#[warden_sdk::gate]
fn evaluate(_submission: &Submission) -> Result<Verdict, String> {
    // The SDK's constructors cap the score at 100; a struct literal does not,
    // and the host must refuse it.
    Ok(Verdict {
        decision: Decision::Approve,
        score: 200,
        reasons: Vec::new(),
    })
}
