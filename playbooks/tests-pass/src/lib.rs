//! `tests-pass`: rejects a change whose tests fail (SPEC QG-5).
//!
//! Reads the submission's test results. Config (warden.toml
//! `[workspaces.<ws>.plugins.tests-pass.config]`):
//!
//! - `missing` (`escalate`): what to do when no test results were
//!   submitted: `escalate`, `reject` or `approve`;
//! - `min_passed` (1): fewer passing tests than this is a rejection (a
//!   stage that ran no test proves nothing);
//! - `max_skipped_ratio` (unset): when set (0.0 to 1.0), rejects when a
//!   larger share of the tests was skipped (a way to hide failures).
//!
//! The score is the share of tests that passed, in percent.

use warden_sdk::config;
use warden_sdk::gate::{Submission, TestResults, Verdict};

/// Reasons carry this category.
const CATEGORY: &str = "tests";

/// Failed tests named one by one; the rest are counted.
const MAX_NAMED_FAILURES: usize = 20;

/// What to do without test results.
#[derive(Clone, Copy)]
enum Missing {
    Escalate,
    Reject,
    Approve,
}

struct Rules {
    missing: Missing,
    min_passed: u32,
    max_skipped_ratio: Option<f64>,
}

impl Rules {
    fn from_config() -> Result<Self, String> {
        let missing = match config::get("missing").as_deref().map(str::trim) {
            None | Some("escalate") => Missing::Escalate,
            Some("reject") => Missing::Reject,
            Some("approve") => Missing::Approve,
            Some(other) => {
                return Err(format!(
                    "invalid config value missing = \"{other}\": expected escalate, reject or approve"
                ));
            }
        };
        let max_skipped_ratio: Option<f64> = config::get_parsed_opt("max_skipped_ratio")?;
        if let Some(r) = max_skipped_ratio
            && !(0.0..=1.0).contains(&r)
        {
            return Err(format!(
                "invalid config value max_skipped_ratio = {r}: expected a share from 0.0 to 1.0"
            ));
        }
        Ok(Rules {
            missing,
            min_passed: config::get_parsed("min_passed", 1)?,
            max_skipped_ratio,
        })
    }
}

#[warden_sdk::gate]
fn evaluate(submission: &Submission) -> Result<Verdict, String> {
    let rules = Rules::from_config()?;
    let Some(tests) = &submission.tests else {
        let why = "no test results were submitted";
        return Ok(match rules.missing {
            Missing::Escalate => Verdict::escalate(50).reason(
                CATEGORY,
                format!("{why}: a human decides (config missing = \"escalate\")"),
            ),
            Missing::Reject => {
                Verdict::reject(0).reason(CATEGORY, format!("{why}: run the tests and report them"))
            }
            Missing::Approve => Verdict::approve(100).reason(
                CATEGORY,
                format!("{why}: approved (config missing = \"approve\")"),
            ),
        });
    };
    Ok(judge(tests, &rules))
}

/// The verdict on these results.
fn judge(tests: &TestResults, rules: &Rules) -> Verdict {
    let total = tests.total();
    let score = if total == 0 {
        0
    } else {
        (f64::from(tests.passed) * 100.0 / f64::from(total)).floor() as u8
    };
    let counts = format!(
        "{} passed, {} failed, {} skipped",
        tests.passed, tests.failed, tests.skipped
    );

    if tests.failed > 0 {
        let mut verdict = Verdict::reject(score).reason(
            CATEGORY,
            format!("{} of {total} test(s) failed ({counts})", tests.failed),
        );
        for name in tests.failures.iter().take(MAX_NAMED_FAILURES) {
            verdict.push(CATEGORY, format!("failed: {name}"));
        }
        if tests.failures.len() > MAX_NAMED_FAILURES {
            verdict.push(
                CATEGORY,
                format!(
                    "and {} more failure(s)",
                    tests.failures.len() - MAX_NAMED_FAILURES
                ),
            );
        }
        return verdict;
    }
    if tests.passed < rules.min_passed {
        return Verdict::reject(score).reason(
            CATEGORY,
            format!(
                "only {} test(s) passed, at least {} required ({counts}): add or run the tests",
                tests.passed, rules.min_passed
            ),
        );
    }
    if let Some(max) = rules.max_skipped_ratio {
        let ratio = f64::from(tests.skipped) / f64::from(total.max(1));
        if ratio > max {
            return Verdict::reject(score).reason(
                CATEGORY,
                format!(
                    "{:.0}% of the tests were skipped, over the {:.0}% allowed ({counts}): un-skip them",
                    ratio * 100.0,
                    max * 100.0
                ),
            );
        }
    }
    Verdict::approve(score).reason(CATEGORY, format!("all tests passed ({counts})"))
}
