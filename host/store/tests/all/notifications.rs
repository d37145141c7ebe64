//! `notifications`, `silences` and the queries of the alert rules, on both
//! dialects: what is due, the outbox and its history, silences matching
//! and expiring; failures, fingerprints and verdict counts of a workspace.

use serde_json::json;
use warden_store::alerts::NewAlert;
use warden_store::notifications::{NewNotification, NotificationFilter, SilenceRow};
use warden_store::stages::{AfterFail, Failure};
use warden_store::{Store, now_ms};

use crate::common::{TestResult, claim_req, new_task};

conformance!(
    the_outbox_queues_delivers_and_keeps_history,
    silences_match_and_expire,
    rule_queries_see_failures_and_fingerprints,
);

fn alert(key: &str, severity: &str) -> NewAlert {
    NewAlert {
        dedup_key: key.to_string(),
        workspace: Some("ws".to_string()),
        rule: "backlog".to_string(),
        severity: severity.to_string(),
        summary: format!("{key} happened"),
        detail: json!({}),
    }
}

async fn the_outbox_queues_delivers_and_keeps_history(store: Store) -> TestResult {
    let (a, _) = store.raise_alert(&alert("a", "critical"), 1_000).await?;
    let (_info, _) = store.raise_alert(&alert("i", "info"), 1_000).await?;
    // Info alerts are never due; a new open one is.
    let due = store.alerts_to_notify(0, 100).await?;
    assert_eq!(
        due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        vec![a.id.as_str()]
    );

    let n = |sink: &str, kind: &str| NewNotification {
        sink: sink.to_string(),
        kind: kind.to_string(),
        severity: "critical".to_string(),
        dedup_key: "a".to_string(),
        alert_ids: vec![a.id.clone()],
        payload: json!({ "text": "a happened" }),
    };
    let ids = store
        .queue_notifications(
            &[n("slack", "trigger"), n("pager", "trigger")],
            std::slice::from_ref(&a.id),
            &[],
            2_000,
        )
        .await?;
    assert_eq!(ids.len(), 2);
    // Notified: no longer due until the repeat interval passes.
    assert!(store.alerts_to_notify(1_999, 100).await?.is_empty());
    assert_eq!(
        store.alerts_to_notify(2_000, 100).await?.len(),
        1,
        "due again for a repeat"
    );
    let got = store.get_alert(None, &a.id).await?.expect("the alert");
    assert_eq!(got.notified_at, Some(2_000));

    let mut sinks = store.sinks_with_pending().await?;
    sinks.sort();
    assert_eq!(sinks, vec!["pager".to_string(), "slack".to_string()]);
    let pending = store.pending_notifications("slack", 10).await?;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].payload, json!({ "text": "a happened" }));
    assert_eq!(pending[0].alert_ids, vec![a.id.clone()]);
    store
        .notification_failed(&pending[0].id, 1, "HTTP 503", 5_000, false)
        .await?;
    let retry = store.pending_notifications("slack", 10).await?;
    assert_eq!((retry[0].attempts, retry[0].next_at), (1, 5_000));
    assert_eq!(retry[0].last_error.as_deref(), Some("HTTP 503"));
    store.notification_delivered(&retry[0].id, 2, 6_000).await?;
    assert!(store.pending_notifications("slack", 10).await?.is_empty());
    let pager = store.pending_notifications("pager", 10).await?;
    store
        .notification_failed(&pager[0].id, 1, "HTTP 400", 6_000, true)
        .await?;
    assert_eq!(store.sinks_with_pending().await?, Vec::<String>::new());

    // Resolved after being notified: its resolve is due, once.
    store.resolve_alert("a", 7_000).await?;
    let due = store.alerts_to_notify(0, 100).await?;
    assert_eq!((due.len(), due[0].status.as_str()), (1, "resolved"));
    store
        .queue_notifications(
            &[n("slack", "resolve")],
            &[],
            std::slice::from_ref(&a.id),
            7_100,
        )
        .await?;
    assert!(store.alerts_to_notify(i64::MAX, 100).await?.is_empty());

    let history = store
        .list_notifications(&NotificationFilter {
            alert_id: Some(a.id.clone()),
            ..Default::default()
        })
        .await?;
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].kind, "resolve", "newest first");
    let failed = store
        .list_notifications(&NotificationFilter {
            sink: Some("pager".to_string()),
            status: Some("failed".to_string()),
            ..Default::default()
        })
        .await?;
    assert_eq!(failed.len(), 1);
    Ok(())
}

async fn silences_match_and_expire(store: Store) -> TestResult {
    let now = now_ms();
    let s = store
        .create_silence(&SilenceRow {
            id: String::new(),
            workspace: Some("ws".to_string()),
            rule: None,
            severity: None,
            dedup_key: Some("stuck:*".to_string()),
            comment: "deploy".to_string(),
            created_by: "admin".to_string(),
            created_at: now,
            ends_at: now + 60_000,
        })
        .await?;
    assert!(!s.id.is_empty());
    assert_eq!(store.list_silences(Some(now)).await?, vec![s.clone()]);
    assert!(s.matches(Some("ws"), "stuck_task", "warning", "stuck:1"));

    let (a, _) = store.raise_alert(&alert("stuck:1", "warning"), now).await?;
    store
        .mark_alerts_silenced(std::slice::from_ref(&a.id), &s.id)
        .await?;
    let got = store
        .get_alert(Some("ws"), &a.id)
        .await?
        .expect("the alert");
    assert_eq!(got.silenced_by.as_deref(), Some(s.id.as_str()));

    let ended = store.expire_silence(&s.id, now + 1_000).await?;
    assert_eq!(ended.ends_at, now + 1_000);
    assert!(store.list_silences(Some(now + 1_000)).await?.is_empty());
    assert_eq!(
        store.list_silences(None).await?.len(),
        1,
        "kept in the history"
    );
    // Ending it again keeps the first end.
    assert_eq!(
        store.expire_silence(&s.id, now + 5_000).await?.ends_at,
        now + 1_000
    );
    assert!(store.expire_silence("nope", now).await.is_err());
    Ok(())
}

async fn rule_queries_see_failures_and_fingerprints(store: Store) -> TestResult {
    let now = now_ms() + 60_000;
    let stages = vec!["implement".to_string()];
    assert_eq!(store.count_stage_failures("ws", 0).await?, 0);
    assert!(store.tasks_failing_at("ws", &stages, 0).await?.is_empty());
    assert!(store.new_fingerprints("ws", 0).await?.is_empty());
    assert_eq!(store.gate_verdict_counts("ws", 0).await?, (0, 0));

    let (task, _) = store.create_task(&new_task("ws", "flaky")).await?;
    let claimed = store.claim_stages(&claim_req("ws", "w", 1, now)).await?;
    let token = claimed[0].run.id;
    let retry = |_: &_| AfterFail::Retry { at: now };
    let Failure::Failed(_) = store
        .fail_stage(
            "ws",
            &task.id,
            token,
            "linker failed",
            "fp-link",
            now + 10,
            &retry,
        )
        .await?
    else {
        panic!("failed");
    };
    assert_eq!(store.count_stage_failures("ws", now).await?, 1);
    assert_eq!(store.count_stage_failures("ws", now + 11).await?, 0);
    assert_eq!(
        store.tasks_failing_at("ws", &stages, now).await?,
        vec![task.id.clone()]
    );
    assert!(
        store
            .tasks_failing_at("ws", &["verify".to_string()], now)
            .await?
            .is_empty()
    );
    let fresh = store.new_fingerprints("ws", now).await?;
    assert_eq!(fresh.len(), 1);
    assert_eq!(
        (
            fresh[0].fingerprint.as_str(),
            fresh[0].count,
            fresh[0].stage.as_str()
        ),
        ("fp-link", 1, "implement")
    );
    assert_eq!(fresh[0].error.as_deref(), Some("linker failed"));
    // Seen before the window: not new.
    assert!(store.new_fingerprints("ws", now + 11).await?.is_empty());
    assert!(store.new_fingerprints("other", now).await?.is_empty());
    Ok(())
}
