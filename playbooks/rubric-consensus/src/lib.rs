//! `rubric-consensus`: approves a reviewed stage when its reviewers score it
//! high enough and agree (SPEC QG-5).
//!
//! The submission's rubric holds one score (0 to 100) per reviewer and
//! criterion. Per criterion, the mean is the average of its scores and the
//! consensus is `100 - (highest - lowest)`: 100 when every reviewer gave
//! the same score, 95 when they are at most 5 points apart. The overall
//! mean is the average of the criteria's means; the overall consensus is
//! the lowest of the criteria's.
//!
//! Config (warden.toml `[workspaces.<ws>.plugins.rubric-consensus.config]`):
//! `min_score` (70), `min_consensus` (95), `min_reviewers` (2).
//!
//! In order: fewer than `min_reviewers` distinct reviewers (overall, or on
//! any criterion), or a score over 100 → escalate; overall mean below
//! `min_score` → reject, naming the criteria below it; consensus below
//! `min_consensus` → escalate, naming the criteria reviewers disagree on;
//! else approve. The score is the overall mean.

use std::collections::{BTreeMap, BTreeSet};

use warden_sdk::config;
use warden_sdk::gate::{RubricScore, Submission, Verdict};

/// Reasons carry this category.
const CATEGORY: &str = "quality";

struct Rules {
    min_score: u8,
    min_consensus: u8,
    min_reviewers: usize,
}

impl Rules {
    fn from_config() -> Result<Self, String> {
        let rules = Rules {
            min_score: config::get_parsed("min_score", 70)?,
            min_consensus: config::get_parsed("min_consensus", 95)?,
            min_reviewers: config::get_parsed("min_reviewers", 2)?,
        };
        for (key, value) in [
            ("min_score", rules.min_score),
            ("min_consensus", rules.min_consensus),
        ] {
            if value > 100 {
                return Err(format!(
                    "invalid config value {key} = {value}: expected 0 to 100"
                ));
            }
        }
        if rules.min_reviewers == 0 {
            return Err("invalid config value min_reviewers = 0: expected at least 1".into());
        }
        Ok(rules)
    }
}

/// The scores of one criterion.
struct Criterion<'a> {
    name: &'a str,
    scores: Vec<&'a RubricScore>,
}

impl Criterion<'_> {
    fn mean(&self) -> f64 {
        let sum: f64 = self.scores.iter().map(|s| f64::from(s.score)).sum();
        sum / self.scores.len().max(1) as f64
    }

    fn consensus(&self) -> u8 {
        let max = self.scores.iter().map(|s| s.score).max().unwrap_or(0);
        let min = self.scores.iter().map(|s| s.score).min().unwrap_or(0);
        100u8.saturating_sub(max - min)
    }

    fn reviewers(&self) -> BTreeSet<&str> {
        self.scores.iter().map(|s| s.reviewer.as_str()).collect()
    }

    /// `clarity: mean 55 (alice 50, bob 60)`.
    fn describe(&self) -> String {
        let each: Vec<String> = self
            .scores
            .iter()
            .map(|s| format!("{} {}", s.reviewer, s.score))
            .collect();
        format!(
            "{}: mean {:.0} ({})",
            self.name,
            self.mean(),
            each.join(", ")
        )
    }
}

#[warden_sdk::gate]
fn evaluate(submission: &Submission) -> Result<Verdict, String> {
    let rules = Rules::from_config()?;
    Ok(judge(&submission.rubric, &rules))
}

/// The verdict on these scores.
fn judge(rubric: &[RubricScore], rules: &Rules) -> Verdict {
    if let Some(bad) = rubric.iter().find(|s| s.score > 100) {
        return Verdict::escalate(0).reason(
            CATEGORY,
            format!(
                "invalid rubric score {} from {} on {} (scores are 0 to 100)",
                bad.score, bad.reviewer, bad.criterion
            ),
        );
    }
    let mut by_criterion: BTreeMap<&str, Vec<&RubricScore>> = BTreeMap::new();
    for score in rubric {
        by_criterion
            .entry(score.criterion.as_str())
            .or_default()
            .push(score);
    }
    let criteria: Vec<Criterion> = by_criterion
        .into_iter()
        .map(|(name, scores)| Criterion { name, scores })
        .collect();
    let reviewers: BTreeSet<&str> = rubric.iter().map(|s| s.reviewer.as_str()).collect();
    let mean = if criteria.is_empty() {
        0.0
    } else {
        criteria.iter().map(Criterion::mean).sum::<f64>() / criteria.len() as f64
    };
    let score = mean.round().clamp(0.0, 100.0) as u8;

    if reviewers.len() < rules.min_reviewers {
        return Verdict::escalate(score).reason(
            CATEGORY,
            format!(
                "{} reviewer(s) scored the rubric, at least {} required: a human decides",
                reviewers.len(),
                rules.min_reviewers
            ),
        );
    }
    let thin: Vec<String> = criteria
        .iter()
        .filter(|c| c.reviewers().len() < rules.min_reviewers)
        .map(|c| format!("{} ({} reviewer(s))", c.name, c.reviewers().len()))
        .collect();
    if !thin.is_empty() {
        return Verdict::escalate(score).reason(
            CATEGORY,
            format!(
                "too few reviewers on {}, at least {} required: a human decides",
                thin.join(", "),
                rules.min_reviewers
            ),
        );
    }

    let consensus = criteria
        .iter()
        .map(Criterion::consensus)
        .min()
        .unwrap_or(100);
    let disagreements: Vec<String> = criteria
        .iter()
        .filter(|c| c.consensus() < rules.min_consensus)
        .map(|c| format!("{}, consensus {}%", c.describe(), c.consensus()))
        .collect();

    if mean < f64::from(rules.min_score) {
        let mut verdict = Verdict::reject(score).reason(
            CATEGORY,
            format!(
                "mean score {mean:.0} over {} criteria is below {}",
                criteria.len(),
                rules.min_score
            ),
        );
        for c in criteria
            .iter()
            .filter(|c| c.mean() < f64::from(rules.min_score))
        {
            verdict.push(
                CATEGORY,
                format!("below {}: {}", rules.min_score, c.describe()),
            );
        }
        for d in &disagreements {
            verdict.push(CATEGORY, format!("reviewers also disagree on {d}"));
        }
        return verdict;
    }
    if consensus < rules.min_consensus {
        let mut verdict = Verdict::escalate(score).reason(
            CATEGORY,
            format!(
                "reviewers disagree: consensus {consensus}% is below {}% (mean score {mean:.0})",
                rules.min_consensus
            ),
        );
        for d in &disagreements {
            verdict.push(CATEGORY, format!("disagreement on {d}"));
        }
        return verdict;
    }
    Verdict::approve(score).reason(
        CATEGORY,
        format!(
            "mean score {mean:.0} from {} reviewer(s) over {} criteria, consensus {consensus}%",
            reviewers.len(),
            criteria.len()
        ),
    )
}
