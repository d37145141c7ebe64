//! `vacuum_hot_tables`: PostgreSQL's busiest tables are vacuumed once their
//! dead row versions outnumber their live rows; SQLite has nothing to do.

use std::time::Duration;

use sqlx::Connection;
use warden_store::{Dialect, Store};

use crate::common::{TestResult, database_url, new_task, raw_execute};

conformance!(tables_full_of_dead_rows_are_vacuumed);

async fn tables_full_of_dead_rows_are_vacuumed(store: Store) -> TestResult {
    for i in 0..20 {
        store.create_task(&new_task("ws", &format!("t{i}"))).await?;
    }
    // 20 live tasks, 200 dead versions of them: an indexed column changes,
    // as in a claim, so the updates are not HOT and pruning does not take
    // the dead versions away.
    for _ in 0..10 {
        raw_execute("UPDATE tasks SET last_event_at = last_event_at + 1").await?;
    }
    if store.dialect() == Dialect::Sqlite {
        assert_eq!(store.vacuum_hot_tables(0).await?, []);
        return Ok(());
    }
    // Too few dead versions for the threshold: nothing.
    assert_eq!(store.vacuum_hot_tables(1_000_000).await?, []);
    // The statistics collector's counts lag by about a second.
    let started = tokio::time::Instant::now();
    let done = loop {
        let done = store.vacuum_hot_tables(100).await?;
        if !done.is_empty() || started.elapsed() > Duration::from_secs(20) {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let tables: Vec<&str> = done.iter().map(|v| v.table).collect();
    assert_eq!(tables, ["tasks"], "{done:?}");
    assert!(done[0].dead > done[0].live, "{done:?}");
    // The vacuum is on record for the table.
    let mut conn = sqlx::PgConnection::connect(&database_url()).await?;
    let vacuumed: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(vacuum_count AS BIGINT) FROM pg_stat_user_tables \
         WHERE schemaname = current_schema() AND relname = 'tasks'",
    )
    .fetch_optional(&mut conn)
    .await?;
    assert_eq!(vacuumed, Some(1));
    conn.close().await?;
    Ok(())
}
