//! `audit_log`: append-only, newest first.

use serde_json::json;
use warden_store::{Store, now_ms};

use crate::common::TestResult;

conformance!(append_and_list_newest_first);

async fn append_and_list_newest_first(store: Store) -> TestResult {
    let before = now_ms();
    let a = store
        .append_audit(
            "admin",
            Some("ws"),
            "pin.set",
            "restart",
            &json!({"selector": "1.0.0"}),
        )
        .await?;
    let b = store
        .append_audit("system", None, "plugin.accept", "sha256:aa", &json!({}))
        .await?;
    let c = store
        .append_audit(
            "ops",
            Some("other"),
            "token.create",
            "ci",
            &json!({"role": "agent"}),
        )
        .await?;
    let d = store
        .append_audit("admin", Some("ws"), "task.create", "t1", &json!([1, 2]))
        .await?;
    assert!(a < b && b < c && c < d, "ids increase: {a} {b} {c} {d}");

    let ws = store.list_audit(Some("ws"), 100).await?;
    assert_eq!(ws.iter().map(|e| e.id).collect::<Vec<_>>(), [d, a]);
    assert_eq!(ws[1].actor, "admin");
    assert_eq!(ws[1].workspace.as_deref(), Some("ws"));
    assert_eq!(ws[1].action, "pin.set");
    assert_eq!(ws[1].target, "restart");
    assert_eq!(ws[1].detail, json!({"selector": "1.0.0"}));
    assert!(ws[1].at >= before);
    assert_eq!(ws[0].detail, json!([1, 2]));

    let all = store.list_audit(None, 100).await?;
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [d, c, b, a]);
    assert_eq!(all[2].workspace, None);
    let two = store.list_audit(None, 2).await?;
    assert_eq!(two.iter().map(|e| e.id).collect::<Vec<_>>(), [d, c]);
    assert!(store.list_audit(Some("nobody"), 10).await?.is_empty());
    Ok(())
}
