//! Approves, with NUL characters (U+0000) in its reasons' categories and
//! messages. PostgreSQL stores no NUL in `text`, so the host must strip
//! them where it lifts the verdict.

use warden_sdk::gate::{Submission, Verdict};

#[warden_sdk::gate]
fn evaluate(_submission: &Submission) -> Result<Verdict, String> {
    Ok(Verdict::approve(90)
        .reason("nul\0category", "nul\0in a message")
        .reason("plain", "no nul here"))
}
