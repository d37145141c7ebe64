//! `diff-size`: rejects a change too large to review (SPEC QG-5).
//!
//! The size is the worker's `diff-stats` when it sent them, else counted
//! from the unified diff. Config (warden.toml
//! `[workspaces.<ws>.plugins.diff-size.config]`):
//!
//! - `max_changed_lines` (800): insertions plus deletions allowed;
//! - `max_files` (40): files changed allowed;
//! - `escalate_over` (unset): when set, a change whose changed lines are
//!   over `max_changed_lines` but at most `escalate_over` is escalated to a
//!   human instead of rejected;
//! - `require_diff` (false): reject a submission without any diff (by
//!   default it is approved: there is nothing to check).
//!
//! The score falls with size: `100 / (1 + r)`, where `r` is the larger of
//! changed lines / `max_changed_lines` and files / `max_files`: 100 for an
//! empty change, 50 at the limit, 25 at three times the limit.

use warden_sdk::config;
use warden_sdk::gate::{DiffStats, Submission, Verdict};

/// Reasons carry this category.
const CATEGORY: &str = "size";

struct Limits {
    max_lines: u32,
    max_files: u32,
    escalate_over: Option<u32>,
    require_diff: bool,
}

impl Limits {
    fn from_config() -> Result<Self, String> {
        let limits = Limits {
            max_lines: config::get_parsed("max_changed_lines", 800)?,
            max_files: config::get_parsed("max_files", 40)?,
            escalate_over: config::get_parsed_opt("escalate_over")?,
            require_diff: config::get_parsed("require_diff", false)?,
        };
        if limits.max_lines == 0 || limits.max_files == 0 {
            return Err(
                "invalid config: max_changed_lines and max_files must be at least 1".into(),
            );
        }
        if let Some(over) = limits.escalate_over
            && over <= limits.max_lines
        {
            return Err(format!(
                "invalid config value escalate_over = {over}: it must be above max_changed_lines ({})",
                limits.max_lines
            ));
        }
        Ok(limits)
    }
}

#[warden_sdk::gate]
fn evaluate(submission: &Submission) -> Result<Verdict, String> {
    let limits = Limits::from_config()?;
    let Some(stats) = submission.diff_stats_or_count() else {
        return Ok(if limits.require_diff {
            Verdict::reject(0).reason(
                CATEGORY,
                "no diff was submitted, and this stage requires one (require_diff)",
            )
        } else {
            Verdict::approve(100).reason(CATEGORY, "no diff was submitted: nothing to check")
        });
    };
    let mut verdict = judge(&stats, &limits);
    if !verdict.is_approved() && submission.diff_stats.is_none() {
        // Counted from the diff: name the largest files, where a split
        // would start.
        let mut files = submission.diff_files();
        files.sort_by_key(|f| std::cmp::Reverse(f.insertions + f.deletions));
        let largest: Vec<String> = files
            .iter()
            .take(3)
            .map(|f| format!("{} (+{} -{})", f.path, f.insertions, f.deletions))
            .collect();
        if !largest.is_empty() {
            verdict.push(CATEGORY, format!("largest files: {}", largest.join(", ")));
        }
    }
    Ok(verdict)
}

/// The verdict on a change of this size.
fn judge(stats: &DiffStats, limits: &Limits) -> Verdict {
    let lines = stats.changed_lines();
    let files = stats.files_changed;
    let ratio = f64::max(
        f64::from(lines) / f64::from(limits.max_lines),
        f64::from(files) / f64::from(limits.max_files),
    );
    let score = (100.0 / (1.0 + ratio)).round() as u8;
    let size = format!(
        "{lines} changed line(s) (+{} -{}) in {files} file(s)",
        stats.insertions, stats.deletions
    );

    let lines_over = lines > limits.max_lines;
    let files_over = files > limits.max_files;
    if !lines_over && !files_over {
        return Verdict::approve(score).reason(
            CATEGORY,
            format!(
                "{size}: within the limits of {} lines and {} files",
                limits.max_lines, limits.max_files
            ),
        );
    }
    let escalate = !files_over && limits.escalate_over.is_some_and(|over| lines <= over);
    let mut verdict = if escalate {
        Verdict::escalate(score)
    } else {
        Verdict::reject(score)
    };
    if lines_over {
        let what = if escalate {
            format!(
                "{size}: over the limit of {} lines (up to {} is escalated for a human to decide)",
                limits.max_lines,
                limits.escalate_over.unwrap_or(limits.max_lines)
            )
        } else {
            format!(
                "{size}: over the limit of {} lines; split the change into smaller ones",
                limits.max_lines
            )
        };
        verdict.push(CATEGORY, what);
    }
    if files_over {
        verdict.push(
            CATEGORY,
            format!(
                "{files} files changed: over the limit of {}; split the change into smaller ones",
                limits.max_files
            ),
        );
    }
    verdict
}
