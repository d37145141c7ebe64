//! `breakers`: persisted circuit-breaker state.

use warden_store::Store;
use warden_store::breakers::BreakerRow;

use crate::common::TestResult;

conformance!(breakers_round_trip_and_replace);

async fn breakers_round_trip_and_replace(store: Store) -> TestResult {
    assert_eq!(store.get_breaker("provider:openai").await?, None);
    let closed = BreakerRow {
        name: "provider:openai".to_string(),
        state: "closed".to_string(),
        failures: 0,
        reason: None,
        opened_at: None,
        retry_at: None,
        updated_at: 1_000,
    };
    store.put_breaker(&closed).await?;
    assert_eq!(
        store.get_breaker("provider:openai").await?,
        Some(closed.clone())
    );

    let open = BreakerRow {
        state: "open".to_string(),
        failures: 5,
        reason: Some("5 consecutive failures".to_string()),
        opened_at: Some(2_000),
        retry_at: Some(62_000),
        updated_at: 2_000,
        ..closed.clone()
    };
    store.put_breaker(&open).await?;
    assert_eq!(
        store.get_breaker("provider:openai").await?,
        Some(open.clone())
    );

    let mcp = BreakerRow {
        name: "process:mcp".to_string(),
        ..closed.clone()
    };
    store.put_breaker(&mcp).await?;
    assert_eq!(store.list_breakers().await?, [mcp, open]);
    Ok(())
}
