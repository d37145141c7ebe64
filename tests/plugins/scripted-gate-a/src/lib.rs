//! A quality gate whose verdict the submission scripts, so that tests can
//! drive quorums, rejections and failures exactly. One directive per line
//! of the submission's text, addressed by package name:
//!
//! ```text
//! scripted-gate-a: reject 20 size: the change is too large
//! scripted-gate-b: escalate
//! scripted-gate-c: loop
//! ```
//!
//! `approve|reject|escalate [score] [category: message]`, or `loop` (spin
//! until the deadline) or `trap` (panic). Without a directive it approves
//! with score 90. The config value `override`, when set, replaces the
//! scripted decision (what a relaxed breaker config does in the tests).
//! `scripted-gate-b` and `scripted-gate-c` include this file.

include!("gate.rs");
