//! `workspace_settings`: one row per workspace, replaced whole.

use serde_json::json;
use warden_store::Store;
use warden_store::breakers::BreakerRow;
use warden_store::settings::{SettingsRow, WorkspaceMode};

use crate::common::{TestResult, raw_execute};

conformance!(
    settings_round_trip_and_replace,
    a_claim_reads_settings_and_open_breakers_together,
    an_unknown_stored_mode_is_an_error,
);

fn row(workspace: &str) -> SettingsRow {
    SettingsRow {
        workspace: workspace.to_string(),
        mode: WorkspaceMode::Normal,
        mode_reason: None,
        pipeline: None,
        limits: json!({}),
        hourly_tokens: None,
        hourly_cost_micros: None,
        actor: "admin".to_string(),
        updated_at: 1_000,
    }
}

async fn settings_round_trip_and_replace(store: Store) -> TestResult {
    assert_eq!(store.get_settings("ws").await?, None);
    assert!(store.list_settings().await?.is_empty());

    let plain = row("ws");
    store.put_settings(&plain).await?;
    assert_eq!(store.get_settings("ws").await?, Some(plain));

    let full = SettingsRow {
        mode: WorkspaceMode::EmergencyStop,
        mode_reason: Some("breaker workspace:ws opened".to_string()),
        pipeline: Some(vec!["plan".into(), "implement".into()]),
        limits: json!({"workspace": 4, "per_stage": {"implement": 2}}),
        hourly_tokens: Some(1_000_000),
        hourly_cost_micros: Some(5_000_000),
        actor: "breaker".to_string(),
        updated_at: 2_000,
        ..row("ws")
    };
    store.put_settings(&full).await?;
    assert_eq!(store.get_settings("ws").await?, Some(full.clone()));

    // Replacing clears what the new row leaves out.
    let cleared = SettingsRow {
        updated_at: 3_000,
        ..row("ws")
    };
    store.put_settings(&cleared).await?;
    assert_eq!(store.get_settings("ws").await?, Some(cleared.clone()));

    store.put_settings(&row("alpha")).await?;
    let all: Vec<String> = store
        .list_settings()
        .await?
        .into_iter()
        .map(|r| r.workspace)
        .collect();
    assert_eq!(all, ["alpha", "ws"]);
    Ok(())
}

async fn a_claim_reads_settings_and_open_breakers_together(store: Store) -> TestResult {
    assert_eq!(store.claim_context("ws").await?, (None, Vec::new()));
    let breaker = |name: &str, state: &str| BreakerRow {
        name: name.to_string(),
        state: state.to_string(),
        failures: 3,
        reason: None,
        opened_at: None,
        retry_at: None,
        updated_at: 1_000,
    };
    for (name, state) in [
        ("provider:zeta", "open"),
        ("provider:alpha", "open"),
        ("provider:beta", "closed"),
        ("plugin:\"quoted\"", "open"),
    ] {
        store.put_breaker(&breaker(name, state)).await?;
    }
    let minimal = SettingsRow {
        mode: WorkspaceMode::Minimal,
        limits: json!({"max_leases": 3}),
        ..row("ws")
    };
    store.put_settings(&minimal).await?;
    store.put_settings(&row("other")).await?;
    let open = vec![
        "plugin:\"quoted\"".to_string(),
        "provider:alpha".to_string(),
        "provider:zeta".to_string(),
    ];
    assert_eq!(
        store.claim_context("ws").await?,
        (Some(minimal), open.clone())
    );
    assert_eq!(store.claim_context("none").await?, (None, open));
    Ok(())
}

/// A mode this version does not know (a newer version's, say) is a clear
/// error naming the column and the value: not read as `normal`, which
/// would start work that mode may forbid.
async fn an_unknown_stored_mode_is_an_error(store: Store) -> TestResult {
    store.put_settings(&row("ws")).await?;
    raw_execute("UPDATE workspace_settings SET mode = 'lockdown' WHERE workspace = 'ws'").await?;
    let err = store
        .get_settings("ws")
        .await
        .expect_err("lockdown is not a mode");
    assert!(
        matches!(&err, warden_store::Error::UnknownValue { column: "workspace_settings.mode", value } if value == "lockdown"),
        "{err:?}"
    );
    Ok(())
}
