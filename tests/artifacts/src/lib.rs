//! Paths of the test plugins, built by this crate's build script from
//! `tests/plugins` (hostile and fixture plugins) and `examples/`.
#![forbid(unsafe_code)]

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
