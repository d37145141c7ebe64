//! `alerts`: deduplicated while unresolved, acknowledged, resolved.

use serde_json::json;
use warden_store::alerts::NewAlert;
use warden_store::{Error, Store};

use crate::common::TestResult;

conformance!(alerts_dedup_ack_and_resolve);

fn alert(key: &str, workspace: Option<&str>, summary: &str) -> NewAlert {
    NewAlert {
        dedup_key: key.to_string(),
        workspace: workspace.map(str::to_string),
        rule: "infinite_loop".to_string(),
        severity: "critical".to_string(),
        summary: summary.to_string(),
        detail: json!({"summary": summary}),
    }
}

async fn alerts_dedup_ack_and_resolve(store: Store) -> TestResult {
    let (first, created) = store
        .raise_alert(&alert("loop/t1", Some("ws"), "looping"), 1_000)
        .await?;
    assert!(created);
    assert_eq!(first.status, "open");
    assert_eq!(
        (first.first_at, first.last_at, first.count),
        (1_000, 1_000, 1)
    );
    assert_eq!(first.workspace.as_deref(), Some("ws"));
    assert_eq!(
        (first.rule.as_str(), first.severity.as_str()),
        ("infinite_loop", "critical")
    );
    assert_eq!(
        (first.resolved_at, first.acked_by.clone(), first.acked_at),
        (None, None, None)
    );

    let (again, created) = store
        .raise_alert(&alert("loop/t1", Some("ws"), "still looping"), 2_000)
        .await?;
    assert!(!created);
    assert_eq!(again.id, first.id);
    assert_eq!(
        (again.first_at, again.last_at, again.count),
        (1_000, 2_000, 2)
    );
    assert_eq!(again.summary, "still looping");
    assert_eq!(again.detail, json!({"summary": "still looping"}));

    // Acknowledged: still the same alert.
    let acked = store
        .ack_alert(Some("ws"), &first.id, "alice", 2_500)
        .await?;
    assert_eq!(acked.status, "acknowledged");
    assert_eq!(
        (acked.acked_by.as_deref(), acked.acked_at),
        (Some("alice"), Some(2_500))
    );
    let same = store.ack_alert(None, &first.id, "bob", 2_600).await?;
    assert_eq!(same, acked, "the first acknowledgement stands");
    let (again, created) = store
        .raise_alert(&alert("loop/t1", Some("ws"), "looping"), 3_000)
        .await?;
    assert!(!created);
    assert_eq!(
        (again.id.as_str(), again.count, again.status.as_str()),
        (first.id.as_str(), 3, "acknowledged")
    );

    let err = store
        .ack_alert(Some("other"), &first.id, "eve", 3_000)
        .await
        .expect_err("another workspace's alert");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(err.to_string(), format!("alert \"{}\" not found", first.id));

    let resolved = store
        .resolve_alert("loop/t1", 4_000)
        .await?
        .expect("resolved");
    assert_eq!(
        (resolved.status.as_str(), resolved.resolved_at),
        ("resolved", Some(4_000))
    );
    assert_eq!(store.resolve_alert("loop/t1", 4_100).await?, None);
    let err = store
        .ack_alert(Some("ws"), &first.id, "alice", 4_200)
        .await
        .expect_err("resolved");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");

    // Resolved: the key opens a new alert.
    let (reopened, created) = store
        .raise_alert(&alert("loop/t1", Some("ws"), "looping again"), 5_000)
        .await?;
    assert!(created);
    assert_ne!(reopened.id, first.id);
    assert_eq!(reopened.count, 1);
    let (global, _) = store
        .raise_alert(&alert("disk/low", None, "disk at 95 %"), 6_000)
        .await?;

    let ids = |alerts: Vec<warden_store::alerts::AlertRow>| {
        alerts.into_iter().map(|a| a.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(store.list_alerts(None, None, 0).await?),
        [global.id.clone(), reopened.id.clone(), first.id.clone()]
    );
    assert_eq!(
        ids(store.list_alerts(Some("ws"), None, 0).await?),
        [reopened.id.clone(), first.id.clone()]
    );
    assert_eq!(
        ids(store.list_alerts(None, Some("open"), 0).await?),
        [global.id.clone(), reopened.id.clone()]
    );
    assert_eq!(
        ids(store.list_alerts(Some("ws"), Some("resolved"), 0).await?),
        [first.id.as_str()]
    );
    assert_eq!(ids(store.list_alerts(None, None, 1).await?), [global.id]);
    Ok(())
}
