//! Printing shared by several command groups: the raw JSON answer, table
//! cells, and the task table of `task ls` and `dlq ls`.

use std::io::Write as _;

use serde_json::Value;
use warden_api::views::Task;

/// Prints `v` as pretty JSON: the answer to `--json`.
pub(super) fn pretty(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// An optional string as a table cell: `-` when absent.
pub(super) fn cell(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

/// A list of tasks (`task ls`, `dlq ls`) as a table.
pub(super) fn tasks(tasks: &[Task]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<37} {:<17} {:<10} {:<7} {:>8}  TITLE / LAST ERROR",
        "ID", "STATE", "STAGE", "PRIO", "ATTEMPTS"
    )?;
    for t in tasks {
        writeln!(
            out,
            "{:<37} {:<17} {:<10} {:<7} {:>8}  {}{}",
            t.id,
            t.state,
            t.stage,
            t.priority,
            format!("{}/{}", t.attempts, t.max_attempts),
            t.title,
            t.last_error
                .as_deref()
                .map(|e| format!(" / {e}"))
                .unwrap_or_default(),
        )?;
    }
    Ok(())
}
