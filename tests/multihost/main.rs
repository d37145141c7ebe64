//! The multi-host test (SPEC ST-2) in a test binary of its own: it drives
//! three `warden serve` processes as hard as the machine allows, so it runs
//! after the other end-to-end tests rather than beside them.
#![expect(
    clippy::unwrap_used,
    reason = "a test helper that cannot go on fails the test loudly"
)]

mod multihost;
// Shared with the e2e binary, which uses all of it; this one does not.
#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

pub use support::*;
