//! See `scripted-gate-a`: the same gate under another name.

include!("../../scripted-gate-a/src/gate.rs");
