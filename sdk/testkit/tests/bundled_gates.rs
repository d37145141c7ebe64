//! The bundled quality gates of `playbooks/` (SPEC QG-5), run as the real
//! `.wasm` the `warden` binary embeds, through the test kit, on the fixtures
//! of `tests/fixtures/gates/`:
//!
//! - `clean/*.diff`: real-world-looking changes, many with things that
//!   look almost like secrets; `secret-scan` must pass every one;
//! - `secrets/*.diff` with `*.expected`: the findings `secret-scan` must
//!   report (`path:line: kind | secret`), each with the secret masked;
//! - `numstat.txt`: `git apply --numstat` of every diff, which `diff-size`
//!   must agree with;
//! - `cases/<gate>/*.json`: one evaluation each (config, submission, the
//!   expected verdict or error).

use std::path::{Path, PathBuf};

use serde_json::Value;
use warden_test_artifacts as artifacts;
use warden_testkit::{Decision, FakeHost, SubmissionBuilder, TestPlugin, TestVerdict, submission};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gates")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files of `dir` with extension `ext`, sorted.
fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = fixtures().join(dir);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    found.sort();
    found
}

fn gate(name: &str) -> TestPlugin {
    let path = match name {
        "diff-size" => artifacts::BUNDLED_DIFF_SIZE,
        "secret-scan" => artifacts::BUNDLED_SECRET_SCAN,
        "tests-pass" => artifacts::BUNDLED_TESTS_PASS,
        "rubric-consensus" => artifacts::BUNDLED_RUBRIC_CONSENSUS,
        other => panic!("no bundled gate {other}"),
    };
    let plugin = TestPlugin::load(path).expect("the bundled gate loads");
    assert_eq!(plugin.meta().name, name);
    assert_eq!(plugin.meta().kind.world(), "quality-gate");
    plugin
}

fn messages(checked: &TestVerdict) -> Vec<String> {
    match checked.verdict() {
        Ok(v) => v.reasons.iter().map(|r| r.message.clone()).collect(),
        Err(e) => panic!("expected a verdict, got: {e}"),
    }
}

fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Approve => "approve",
        Decision::Reject => "reject",
        Decision::Escalate => "escalate",
    }
}

fn diff_of(name: &str) -> String {
    read(&fixtures().join(name))
}

#[tokio::test]
async fn secret_scan_passes_twenty_clean_real_world_diffs() {
    let scan = gate("secret-scan");
    let host = FakeHost::new();
    let clean = files("clean", "diff");
    assert_eq!(clean.len(), 20, "the acceptance asks for 20 clean diffs");
    for path in clean {
        let checked = scan
            .evaluate(&host, &submission("implement").diff(read(&path)))
            .await;
        let verdict = checked
            .verdict()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            (verdict.decision, verdict.score),
            (Decision::Approve, 100),
            "false positive in {}: {:?}",
            path.display(),
            messages(&checked)
        );
        assert_eq!(verdict.reasons.len(), 1);
        assert_eq!(verdict.reasons[0].category, "secret");
        assert!(
            verdict.reasons[0].message.starts_with("no secrets in "),
            "{}",
            verdict.reasons[0].message
        );
    }
}

#[tokio::test]
async fn secret_scan_catches_aws_keys_private_keys_github_and_slack_tokens() {
    let scan = gate("secret-scan");
    let host = FakeHost::new();
    let mut kinds = std::collections::BTreeSet::new();
    let diffs = files("secrets", "diff");
    assert_eq!(diffs.len(), 5);
    for path in diffs {
        let expected: Vec<(String, String)> = read(&path.with_extension("expected"))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (place, secret) = l.split_once(" | ").expect("`place | secret`");
                (place.to_string(), secret.to_string())
            })
            .collect();
        let checked = scan
            .evaluate(&host, &submission("implement").diff(read(&path)))
            .await;
        let verdict = checked
            .verdict()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(verdict.decision, Decision::Reject, "{}", path.display());
        assert_eq!(verdict.score, 0);
        let got = messages(&checked);
        // One reason per finding, then the advice.
        assert_eq!(
            got.len(),
            expected.len() + 1,
            "{}: {got:#?}",
            path.display()
        );
        assert!(got[expected.len()].starts_with("remove the secrets"));
        for (place, secret) in &expected {
            let reason = got
                .iter()
                .find(|m| m.starts_with(place.as_str()))
                .unwrap_or_else(|| panic!("{}: no `{place}` in {got:#?}", path.display()));
            kinds.insert(place.split(": ").nth(1).unwrap_or_default().to_string());
            // The secret is masked: its length is shown, not its body.
            if !secret.starts_with("-----BEGIN") {
                let tail = &secret[secret.len() - 8..];
                assert!(!reason.contains(tail), "{reason} shows {secret}");
                assert!(
                    reason.contains(&format!("{} characters", secret.len())),
                    "{reason}"
                );
            }
        }
        for reason in &verdict.reasons {
            assert_eq!(reason.category, "secret");
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "AWS access key id",
            "AWS secret access key",
            "GitHub fine-grained token",
            "GitHub token",
            "Slack token",
            "Slack webhook URL",
            "private key",
        ]
    );
}

#[tokio::test]
async fn diff_size_counts_like_git() {
    let size = gate("diff-size");
    let host = FakeHost::new();
    // Large enough that every fixture is approved: only the counts matter.
    host.set_config("max_changed_lines", "100000");
    host.set_config("max_files", "1000");
    let numstat = read(&fixtures().join("numstat.txt"));
    let mut checked_files = 0;
    for line in numstat.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, files, insertions, deletions] = fields[..] else {
            panic!("bad numstat line {line:?}");
        };
        let lines: u32 = insertions.parse::<u32>().unwrap() + deletions.parse::<u32>().unwrap();
        let checked = size
            .evaluate(&host, &submission("implement").diff(diff_of(name)))
            .await;
        let got = messages(&checked);
        let want =
            format!("{lines} changed line(s) (+{insertions} -{deletions}) in {files} file(s)");
        assert!(got[0].starts_with(&want), "{name}: {got:?}, want {want}");
        checked_files += 1;
    }
    assert_eq!(checked_files, 26);
}

/// Builds the submission a JSON case describes.
fn case_submission(case: &Value, path: &Path) -> SubmissionBuilder {
    let s = &case["submission"];
    let mut built = submission(s["stage"].as_str().unwrap_or("implement"));
    if let Some(diff) = s["diff"].as_str() {
        built = built.diff(diff);
    }
    if let Some(file) = s["diff_file"].as_str() {
        built = built.diff(diff_of(file));
    }
    if let Some([files, ins, del]) = s["diff_stats"].as_array().map(Vec::as_slice) {
        let n = |v: &Value| v.as_u64().expect("diff_stats are numbers") as u32;
        built = built.diff_stats(n(files), n(ins), n(del));
    }
    let tests = &s["tests"];
    if tests.is_object() {
        let n = |k: &str| tests[k].as_u64().unwrap_or(0) as u32;
        for name in tests["failures"].as_array().into_iter().flatten() {
            built = built.failure(name.as_str().expect("failures are strings"));
        }
        built = built.tests(n("passed"), n("failed"), n("skipped"));
    }
    for score in s["rubric"].as_array().into_iter().flatten() {
        let [reviewer, criterion, value] = score.as_array().map(Vec::as_slice).unwrap_or(&[])
        else {
            panic!(
                "{}: a rubric score is [reviewer, criterion, score]",
                path.display()
            );
        };
        built = built.rubric(
            reviewer.as_str().expect("a reviewer name"),
            criterion.as_str().expect("a criterion name"),
            value.as_u64().expect("a score") as u8,
        );
    }
    if let Some(text) = s["text"].as_str() {
        built = built.text(text);
    }
    built
}

async fn run_cases(name: &str) {
    let plugin = gate(name);
    let cases = files(&format!("cases/{name}"), "json");
    assert!(cases.len() >= 5, "{name} has {} case(s)", cases.len());
    for path in cases {
        let case: Value = serde_json::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let host = FakeHost::new();
        if let Some(config) = case["config"].as_object() {
            for (k, v) in config {
                host.set_config(k, v.as_str().expect("config values are strings"));
            }
        }
        let checked = plugin.evaluate(&host, &case_submission(&case, &path)).await;
        let expect = &case["expect"];
        let at = path.display();
        if let Some(error) = expect["error"].as_str() {
            let got = checked.error().map(ToString::to_string).unwrap_or_default();
            assert!(got.contains(error), "{at}: error {got:?}, want {error:?}");
            continue;
        }
        let verdict = checked
            .verdict()
            .unwrap_or_else(|e| panic!("{at}: expected a verdict, got: {e}"));
        let got = messages(&checked);
        assert_eq!(
            decision_name(verdict.decision),
            expect["decision"].as_str().expect("expect.decision"),
            "{at}: {got:#?}"
        );
        if let Some(score) = expect["score"].as_u64() {
            assert_eq!(u64::from(verdict.score), score, "{at}: {got:#?}");
        }
        if let Some(count) = expect["reason_count"].as_u64() {
            assert_eq!(got.len() as u64, count, "{at}: {got:#?}");
        }
        for want in expect["reasons"].as_array().into_iter().flatten() {
            let want = want.as_str().expect("reasons are strings");
            assert!(
                got.iter().any(|m| m.contains(want)),
                "{at}: no reason contains {want:?}: {got:#?}"
            );
        }
        let category = expect["category"].as_str().expect("expect.category");
        assert!(
            verdict.reasons.iter().all(|r| r.category == category),
            "{at}"
        );
    }
}

#[tokio::test]
async fn diff_size_cases() {
    run_cases("diff-size").await;
}

#[tokio::test]
async fn secret_scan_cases() {
    run_cases("secret-scan").await;
}

#[tokio::test]
async fn tests_pass_cases() {
    run_cases("tests-pass").await;
}

#[tokio::test]
async fn rubric_consensus_cases() {
    run_cases("rubric-consensus").await;
}

#[tokio::test]
async fn bundled_gates_need_no_capability() {
    for name in ["diff-size", "secret-scan", "tests-pass", "rubric-consensus"] {
        let plugin = gate(name);
        assert!(
            plugin.meta().capabilities.names().is_empty(),
            "{name}: {:?}",
            plugin.meta().capabilities.names()
        );
        // A strict operator who grants nothing can still run them.
        let host = FakeHost::new();
        host.grant_only(&[]).unwrap();
        let checked = plugin.evaluate(&host, &submission("review")).await;
        assert!(checked.verdict().is_ok(), "{name}: {:?}", checked.error());
        assert!(checked.logs().len() < 10);
    }
}
