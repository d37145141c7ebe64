//! `provider-failover-check`: looks at the model gateway's providers from
//! their breakers and says whether requests still have somewhere to go
//! (SPEC PB-6). Bind it to the `breaker_open` alert so that an incident
//! comes with the answer to "can we still serve?".
//!
//! Read-only in every mode (it needs `health:read` only): the gateway fails
//! over by itself, and a breaker is opened or closed by hand with
//! `PUT /v1/breakers/provider:<name>`; what this playbook cannot do is
//! listed as manual actions.
//!
//! Config (warden.toml `[workspaces.<ws>.plugins.provider-failover-check.config]`):
//! `min_healthy` (1): fewer closed providers than this is critical.

use warden_sdk::health::Breaker;
use warden_sdk::{Context, Finding, Report, config, health};

#[warden_sdk::playbook(capabilities = ["health:read"], idempotent, concurrent)]
fn run(_ctx: &Context) -> Result<Report, warden_sdk::HostError> {
    let snapshot = health::snapshot()?;
    let providers: Vec<&Breaker> = snapshot
        .breakers
        .iter()
        .filter(|b| b.name.starts_with("provider:"))
        .collect();
    Ok(check(&providers, config::get_or("min_healthy", 1)))
}

fn name(b: &Breaker) -> &str {
    b.name.trim_start_matches("provider:")
}

/// The report for these provider breakers.
fn check(providers: &[&Breaker], min_healthy: usize) -> Report {
    let mut report = Report::new(String::new());
    if providers.is_empty() {
        report.push(Finding::info(
            "providers.none",
            "no model provider is configured; the gateway has nothing to fail over between",
        ));
        report.summary = "no providers configured".to_string();
        return report;
    }
    let healthy: Vec<&str> = providers
        .iter()
        .filter(|b| b.state == "closed")
        .map(|b| name(b))
        .collect();
    let probing: Vec<&str> = providers
        .iter()
        .filter(|b| b.state == "half-open")
        .map(|b| name(b))
        .collect();
    let open: Vec<&&Breaker> = providers.iter().filter(|b| b.state == "open").collect();
    for b in &open {
        report.push(
            Finding::warning(
                "provider.open",
                format!("{} is failing; its breaker is open and requests skip it", name(b)),
            )
            .evidence(format!("{} consecutive failure(s)", b.consecutive_failures)),
        );
    }
    for p in &probing {
        report.push(Finding::info(
            "provider.probing",
            format!("{p} is being probed after its backoff"),
        ));
    }
    if healthy.len() >= min_healthy {
        report.push(Finding::info(
            "failover.ok",
            format!(
                "{} of {} provider(s) healthy ({}); requests fail over to them",
                healthy.len(),
                providers.len(),
                healthy.join(", ")
            ),
        ));
    } else {
        report.push(
            Finding::critical(
                "failover.exhausted",
                format!(
                    "{} of {} provider(s) healthy, fewer than the {min_healthy} required: requests may fail with UNAVAILABLE",
                    healthy.len(),
                    providers.len()
                ),
            )
            .evidence(format!(
                "open: {}; probing: {}",
                open.iter().map(|b| name(b)).collect::<Vec<_>>().join(", "),
                if probing.is_empty() { "none".to_string() } else { probing.join(", ") }
            )),
        );
        report.manual(
            "add or re-enable a provider in [[gateway.providers]], or check the failing providers' status pages and API keys",
        );
    }
    if !open.is_empty() {
        report.manual(
            "if a provider is down for long, keep its breaker open by hand (PUT /v1/breakers/provider:<name> {\"state\": \"open\"}) and close it when it is back",
        );
    }
    report.summary = match (open.len(), healthy.len()) {
        (0, _) if probing.is_empty() => format!("all {} provider(s) healthy", providers.len()),
        (_, 0) => format!("no healthy provider: {} open, {} probing", open.len(), probing.len()),
        (o, h) => format!("{o} provider(s) failing, {h} healthy to fail over to"),
    };
    report
}
