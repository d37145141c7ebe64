//! Paths of the test plugins, built by this crate's build script from
//! `tests/plugins` (hostile and fixture plugins), `examples/` (prefix
//! `TEMPLATE_`) and `playbooks/` (the bundled plugins, prefix `BUNDLED_`).
#![forbid(unsafe_code)]

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
