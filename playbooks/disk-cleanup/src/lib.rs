//! `disk-cleanup`: compresses evidence older than 1 h (SPEC PB-6, RL-3).
//!
//! Reports how full the evidence file system is and how many evidence
//! files (and bytes) older than `older_than_secs` are still uncompressed;
//! then compresses each one with `evidence::compress`, one audited action
//! per file. The host's disk guard does the same on its own once the disk
//! is over its pause threshold; this playbook lets an operator (or an
//! alert binding) do it earlier, with a plan to review first.
//!
//! In `diagnose` mode it only reports; in `plan` mode each compression is
//! recorded as a planned action and nothing is compressed; in `apply` mode
//! each file is compressed. When the step budget is spent, the files left
//! are listed as manual actions.
//!
//! Config values (warden.toml
//! `[workspaces.<ws>.plugins.disk-cleanup] config = { .. }`):
//! `older_than_secs` (3600) and `max_files` (500 per run).

use warden_sdk::evidence::{self, File};
use warden_sdk::{Context, Finding, HostError, Mode, Report, config};

/// Percent used above which the disk guard pauses recording by default.
const CRITICAL_PCT: f64 = 90.0;
/// Percent used above which the disk guard would not yet resume.
const WARNING_PCT: f64 = 75.0;

#[warden_sdk::playbook(capabilities = ["artifacts:read", "artifacts:compact"])]
fn run(ctx: &Context) -> Result<Report, HostError> {
    let older_than: u64 = config::get_or("older_than_secs", 3600);
    let max_files: usize = config::get_or("max_files", 500);
    let mut report = Report::new(String::new());

    let usage = evidence::usage()?;
    let disk = format!(
        "{:.1} % used, {} free of {} on the file system of {}{}",
        usage.used_pct,
        bytes(usage.free_bytes),
        bytes(usage.total_bytes),
        usage.path,
        if usage.recording_paused {
            "; the disk guard has paused evidence recording"
        } else {
            ""
        }
    );
    let finding = if usage.used_pct > CRITICAL_PCT {
        Finding::critical("evidence.disk", "the evidence disk is nearly full")
    } else if usage.used_pct > WARNING_PCT {
        Finding::warning("evidence.disk", "the evidence disk is filling up")
    } else {
        Finding::info("evidence.disk", "the evidence disk has room")
    };
    report.push(finding.evidence(disk));

    let mut old = evidence::list_old(older_than)?;
    let total_files = old.len();
    let total_bytes: u64 = old.iter().map(|f| f.bytes).sum();
    if old.is_empty() {
        report.push(Finding::info(
            "evidence.old",
            format!("no uncompressed evidence older than {older_than}s"),
        ));
        report.summary = "nothing to compress".to_string();
        return Ok(report);
    }
    report.push(
        Finding::warning(
            "evidence.old",
            format!(
                "{total_files} evidence file(s), {}, older than {older_than}s are not compressed",
                bytes(total_bytes)
            ),
        )
        .evidence(paths(&old)),
    );
    old.truncate(max_files);
    if ctx.mode() == Mode::Diagnose {
        report.manual(format!(
            "run disk-cleanup in plan or apply mode to compress {} file(s)",
            old.len()
        ));
        report.summary = format!("{total_files} file(s) to compress");
        return Ok(report);
    }

    let (mut made, mut failed, mut saved) = (0usize, 0usize, 0u64);
    let mut stopped = None;
    let mut rest = old.iter();
    for file in rest.by_ref() {
        match evidence::compress(&file.path) {
            Ok(sizes) => {
                made += 1;
                if let Some(c) = sizes {
                    saved += c.original_bytes.saturating_sub(c.compressed_bytes);
                }
            }
            Err(HostError::StepBudgetSpent) => stopped = Some("step budget spent".to_string()),
            Err(HostError::Denied(why)) => stopped = Some(format!("denied: {why}")),
            Err(e) => {
                // Removed or compressed meanwhile (by the disk guard, or a
                // concurrent run): report it and go on with the others.
                failed += 1;
                report.push(
                    Finding::warning(
                        "compress.failed",
                        format!("could not compress {}", file.path),
                    )
                    .evidence(e.to_string()),
                );
            }
        }
        if let Some(why) = &stopped {
            // A further mutating call after a spent budget would end the
            // run, so this file and the ones left go to a human.
            report.manual(format!("compress evidence {} ({why})", file.path));
            break;
        }
    }
    if let Some(why) = &stopped {
        for file in rest {
            report.manual(format!("compress evidence {} ({why})", file.path));
        }
    }
    let left = old.len() - made - failed;
    report.summary = if ctx.mode() == Mode::Plan {
        format!(
            "{made} of {} compression(s) planned, {left} left as manual actions",
            old.len()
        )
    } else {
        format!(
            "{made} of {} file(s) compressed, {} saved, {failed} failed, {left} left as manual actions",
            old.len(),
            bytes(saved)
        )
    };
    Ok(report)
}

/// The first 20 paths, for a finding's evidence.
fn paths(files: &[File]) -> String {
    let mut s: Vec<String> = files
        .iter()
        .take(20)
        .map(|f| format!("{} ({}, {}s old)", f.path, bytes(f.bytes), f.age_secs))
        .collect();
    if files.len() > 20 {
        s.push(format!("and {} more", files.len() - 20));
    }
    s.join(", ")
}

/// A byte count for people.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
