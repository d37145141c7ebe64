//! The quality-gate world: what a gate receives and what it answers
//! (SPEC QG-2).
//!
//! A gate looks at one stage result of a task, a [`Submission`], and
//! answers with a [`Verdict`]: approve, reject or escalate, a score from 0
//! to 100 and the reasons, each with a category. Declare it with
//! [`#[warden_sdk::gate]`](crate::gate):
//!
//! ```no_run
//! use warden_sdk::config;
//! use warden_sdk::gate::{Submission, Verdict};
//!
//! #[warden_sdk::gate]
//! fn evaluate(submission: &Submission) -> Result<Verdict, String> {
//!     let max: u32 = config::get_or("max_changed_lines", 800);
//!     let changed = submission.diff_stats_or_count().map_or(0, |s| s.changed_lines());
//!     if changed > max {
//!         return Ok(Verdict::reject(0).reason("size", format!("{changed} changed lines, over {max}")));
//!     }
//!     Ok(Verdict::approve(100))
//! }
//! # fn main() {}
//! ```
//!
//! A gate may use [`log`](crate::log), [`config`](crate::config) and, with
//! capability `kv`, [`kv`](crate::kv); the world offers nothing else.

mod diff;

use std::fmt::Display;

pub use crate::wit::gate::warden::plugin::gate_types::{
    Artifact, Decision, DiffStats, Reason, RubricScore, Submission, TestResults, Verdict,
};
pub use diff::{DiffFile, DiffLine, parse_diff};

/// The highest score; the host refuses a verdict with a higher one.
pub const MAX_SCORE: u8 = 100;

impl Verdict {
    /// A verdict without reasons. A score over 100 is lowered to 100.
    pub fn new(decision: Decision, score: u8) -> Self {
        Verdict {
            decision,
            score: score.min(MAX_SCORE),
            reasons: Vec::new(),
        }
    }

    /// Lets the stage result pass.
    pub fn approve(score: u8) -> Self {
        Self::new(Decision::Approve, score)
    }

    /// Sends the task back, with the reasons as what to fix.
    pub fn reject(score: u8) -> Self {
        Self::new(Decision::Reject, score)
    }

    /// Asks a human: the task waits for approval.
    pub fn escalate(score: u8) -> Self {
        Self::new(Decision::Escalate, score)
    }

    /// Adds a reason, e.g. `.reason("size", "1200 changed lines, over 800")`.
    pub fn reason(mut self, category: impl Into<String>, message: impl Into<String>) -> Self {
        self.push(category, message);
        self
    }

    /// Adds a reason to a verdict held in a variable.
    pub fn push(&mut self, category: impl Into<String>, message: impl Into<String>) -> &mut Self {
        self.reasons.push(Reason::new(category, message));
        self
    }

    /// True when the decision is `Approve`.
    pub fn is_approved(&self) -> bool {
        self.decision == Decision::Approve
    }
}

impl Reason {
    /// A reason with its category, e.g. `size`, `secret`, `tests`, `quality`.
    pub fn new(category: impl Into<String>, message: impl Into<String>) -> Self {
        Reason {
            category: category.into(),
            message: message.into(),
        }
    }
}

impl Decision {
    /// `approve`, `reject` or `escalate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::Escalate => "escalate",
        }
    }
}

impl DiffStats {
    /// Insertions plus deletions.
    pub fn changed_lines(&self) -> u32 {
        self.insertions.saturating_add(self.deletions)
    }
}

impl TestResults {
    /// Passed, failed and skipped together.
    pub fn total(&self) -> u32 {
        self.passed
            .saturating_add(self.failed)
            .saturating_add(self.skipped)
    }
}

impl Submission {
    /// The files of the unified diff, when there is one (see
    /// [`parse_diff`]).
    pub fn diff_files(&self) -> Vec<DiffFile> {
        self.diff.as_deref().map(parse_diff).unwrap_or_default()
    }

    /// The diff's size: `diff_stats` as the worker sent them, else counted
    /// from the unified diff; `None` when the submission has neither.
    pub fn diff_stats_or_count(&self) -> Option<DiffStats> {
        if let Some(stats) = self.diff_stats {
            return Some(stats);
        }
        let files = parse_diff(self.diff.as_deref()?);
        Some(DiffStats {
            files_changed: u32::try_from(files.len()).unwrap_or(u32::MAX),
            insertions: files
                .iter()
                .fold(0u32, |n, f| n.saturating_add(f.insertions)),
            deletions: files
                .iter()
                .fold(0u32, |n, f| n.saturating_add(f.deletions)),
        })
    }

    /// The artifact named `name`, when there is one.
    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.name == name)
    }
}

/// Called by the code `#[gate]` emits.
#[doc(hidden)]
pub fn evaluate_gate<E: Display>(
    submission: Submission,
    f: fn(&Submission) -> Result<Verdict, E>,
) -> Result<Verdict, String> {
    f(&submission).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission(diff: Option<&str>, stats: Option<DiffStats>) -> Submission {
        Submission {
            workspace: "w".into(),
            task_id: "t1".into(),
            stage: "implement".into(),
            attempt: 1,
            diff: diff.map(str::to_string),
            diff_stats: stats,
            tests: None,
            rubric: Vec::new(),
            artifacts: Vec::new(),
            text: None,
        }
    }

    #[test]
    fn constructors_set_decision_score_and_reasons() {
        let v = Verdict::reject(30)
            .reason("size", "too big")
            .reason("size", "too many files");
        assert_eq!(v.decision, Decision::Reject);
        assert_eq!(v.score, 30);
        assert_eq!(v.reasons.len(), 2);
        assert_eq!(v.reasons[1].message, "too many files");
        assert!(!v.is_approved());
        assert!(Verdict::approve(100).is_approved());
        assert_eq!(Verdict::escalate(250).score, 100);
        assert_eq!(Decision::Escalate.as_str(), "escalate");
    }

    #[test]
    fn stats_come_from_the_worker_else_from_the_diff() {
        let given = DiffStats {
            files_changed: 9,
            insertions: 90,
            deletions: 9,
        };
        let diff = "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-old\n+new\n ctx\n";
        assert_eq!(
            submission(Some(diff), Some(given)).diff_stats_or_count(),
            Some(given)
        );
        assert_eq!(
            submission(Some(diff), None).diff_stats_or_count(),
            Some(DiffStats {
                files_changed: 1,
                insertions: 1,
                deletions: 1
            })
        );
        assert_eq!(submission(None, None).diff_stats_or_count(), None);
        assert_eq!(given.changed_lines(), 99);
    }
}
