//! Printing shared by several command groups: the raw JSON answer, table
//! cells, and the task table of `task ls` and `dlq ls`.

use std::io::Write as _;

use serde_json::Value;

use super::Client;

/// Prints `v` as pretty JSON: the answer to `--json`.
pub(super) fn pretty(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// A JSON value as a table cell: strings bare, null as `-`.
pub(super) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A list of tasks (`task ls`, `dlq ls`): a table, or JSON with `--json`.
pub(super) fn tasks(client: &Client, tasks: &Value) -> anyhow::Result<()> {
    if client.json() {
        return pretty(tasks);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<37} {:<17} {:<10} {:<7} {:>8}  TITLE / LAST ERROR",
        "ID", "STATE", "STAGE", "PRIO", "ATTEMPTS"
    )?;
    for t in tasks.as_array().into_iter().flatten() {
        writeln!(
            out,
            "{:<37} {:<17} {:<10} {:<7} {:>8}  {}{}",
            t["id"].as_str().unwrap_or(""),
            t["state"].as_str().unwrap_or(""),
            t["stage"].as_str().unwrap_or(""),
            t["priority"].as_str().unwrap_or(""),
            format!("{}/{}", t["attempts"], t["max_attempts"]),
            t["title"].as_str().unwrap_or(""),
            t["last_error"]
                .as_str()
                .map(|e| format!(" / {e}"))
                .unwrap_or_default(),
        )?;
    }
    Ok(())
}
