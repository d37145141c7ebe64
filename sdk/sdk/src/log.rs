//! Structured log lines into the run's record. Always available.
//!
//! `println!` and `eprintln!` work too: the host captures stdout and stderr
//! into the same record.

use crate::wit::playbook::warden::plugin::log::{self as wit, Level};

fn emit(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    wit::log(level, message, &fields);
}

/// A debug line.
pub fn debug(message: &str) {
    emit(Level::Debug, message, &[]);
}

/// An info line.
pub fn info(message: &str) {
    emit(Level::Info, message, &[]);
}

/// A warning line.
pub fn warn(message: &str) {
    emit(Level::Warn, message, &[]);
}

/// An error line.
pub fn error(message: &str) {
    emit(Level::Error, message, &[]);
}

/// An info line with key/value fields kept beside the message.
pub fn info_with(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Info, message, fields);
}
