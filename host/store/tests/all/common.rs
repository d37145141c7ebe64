//! The harness: runs each conformance test once on a fresh SQLite file and
//! once in a fresh PostgreSQL schema, plus fixtures shared by the areas.

use std::future::Future;
use std::io::Write;
use std::sync::Once;
use std::time::Duration;

use serde_json::json;
use sqlx::{AssertSqlSafe, Connection};
use warden_store::actions::ActionRow;
use warden_store::runs::NewRun;
use warden_store::stages::{ClaimRequest, Claimed, LeaseLimits};
use warden_store::tasks::{NewTask, TaskBudget};
use warden_store::{Store, new_id};

/// What a conformance test returns.
pub type TestResult = anyhow::Result<()>;

/// Where the PostgreSQL half runs unless `WARDEN_TEST_DATABASE_URL` says.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A test that takes longer is reported as hung rather than left running.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

tokio::task_local! {
    /// The URL of the database the current test runs on, for fixtures that
    /// must bypass the store (see [`force_task`]).
    static DATABASE_URL: String;
}

/// Declares `sqlite` and `postgres` tests for each listed
/// `async fn name(store: Store) -> TestResult`, in a module of that name.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                crate::common::on_sqlite(module_path!(), super::$name).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                crate::common::on_postgres(module_path!(), super::$name).await
            }
        }
    )*};
}

/// Runs `test` on a new SQLite file in a directory that does not exist yet
/// (so every test also checks that `connect` creates it).
pub async fn on_sqlite<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = TestResult> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("state").join("warden.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url)
        .await
        .expect("connect to a new sqlite file");
    assert!(path.exists(), "connect did not create {}", path.display());
    store.migrate().await.expect("sqlite migrations apply");
    let outcome =
        tokio::time::timeout(TEST_TIMEOUT, DATABASE_URL.scope(url, test(store.clone()))).await;
    store.close().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{name} failed on sqlite: {e:?}"),
        Err(_) => panic!("{name} timed out on sqlite after {TEST_TIMEOUT:?}"),
    }
}

/// Runs `test` in a new schema of the PostgreSQL database, dropped
/// afterwards even when the test panics. When PostgreSQL is unreachable the
/// test fails under `CI=true` and is skipped, loudly, otherwise.
pub async fn on_postgres<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = TestResult> + Send + 'static,
{
    let base = std::env::var("WARDEN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    let connected =
        tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&base)).await;
    let mut admin = match connected {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return postgres_unreachable(name, &base, &e.to_string()),
        Err(_) => return postgres_unreachable(name, &base, "no answer within 10 s"),
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .expect("create the test schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");

    let run = async {
        let store = Store::connect(&url).await.expect("connect to postgres");
        store.migrate().await.expect("postgres migrations apply");
        let outcome = tokio::spawn(tokio::time::timeout(
            TEST_TIMEOUT,
            DATABASE_URL.scope(url.clone(), test(store.clone())),
        ))
        .await;
        store.close().await;
        outcome
    };
    let outcome = run.await;

    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .expect("drop the test schema");
    let _ = admin.close().await;

    match outcome {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => panic!("{name} failed on postgres: {e:?}"),
        Ok(Err(_)) => panic!("{name} timed out on postgres after {TEST_TIMEOUT:?}"),
        Err(join) => match join.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(e) => panic!("{name} on postgres was cancelled: {e}"),
        },
    }
}

fn postgres_unreachable(name: &str, url: &str, why: &str) {
    let url = &redact(url);
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{name}: PostgreSQL at {url} is unreachable ({why}) and CI=true requires both dialects; \
             start PostgreSQL or point WARDEN_TEST_DATABASE_URL at one"
        );
    }
    eprintln!("WARNING: {name}: PostgreSQL half SKIPPED, {url} is unreachable: {why}");
    // Once per run, past libtest's output capture, so that a green run
    // cannot hide that half the suite did not run.
    static LOUD: Once = Once::new();
    LOUD.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\n==================================================================\n\
             WARNING: the PostgreSQL half of the warden-store conformance suite\n\
             was SKIPPED: {url} is unreachable ({why}).\n\
             Only SQLite was tested. Start PostgreSQL, set WARDEN_TEST_DATABASE_URL,\n\
             or set CI=true to make this a failure.\n\
             ==================================================================\n"
        );
    });
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let Some(at) = url[scheme_end..].find('@').map(|i| i + scheme_end) else {
        return url.to_string();
    };
    match url[scheme_end..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..scheme_end + colon], &url[at..]),
        None => url.to_string(),
    }
}

/// Sets columns of a task that the store has no call for yet (the scheduler
/// will claim, fail and finish tasks), straight in the database.
pub async fn force_task(
    id: &str,
    state: &str,
    lease: Option<(&str, i64)>,
    last_event_at: Option<i64>,
) -> TestResult {
    let url = DATABASE_URL.get();
    let mut conn = sqlx::AnyConnection::connect(&url).await?;
    let done = sqlx::query(
        "UPDATE tasks SET state = $2, lease_owner = $3, lease_expires_at = $4, \
         last_event_at = COALESCE($5, last_event_at) WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(lease.map(|l| l.0))
    .bind(lease.map(|l| l.1))
    .bind(last_event_at)
    .execute(&mut conn)
    .await?;
    anyhow::ensure!(done.rows_affected() == 1, "no task {id} to force");
    conn.close().await?;
    Ok(())
}

/// Runs one statement straight on the test database (to corrupt a row).
/// The URL of the database the current test runs on.
pub fn database_url() -> String {
    DATABASE_URL.get()
}

pub async fn raw_execute(sql: &str) -> TestResult {
    let url = DATABASE_URL.get();
    let mut conn = sqlx::AnyConnection::connect(&url).await?;
    sqlx::query(AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// A run of `plugin` in `workspace`, not exclusive, without a key.
pub fn new_run(workspace: &str, plugin: &str) -> NewRun {
    NewRun {
        id: new_id(),
        workspace: workspace.to_string(),
        plugin: plugin.to_string(),
        version: "1.0.0".to_string(),
        digest: format!("sha256:{plugin}"),
        mode: warden_store::runs::RunMode::Diagnose,
        input: json!({"why": "test"}),
        actor: "tester".to_string(),
        trigger: "http".to_string(),
        idempotency_key: None,
        plan_run_id: None,
        retry_of: None,
        exclusive: false,
    }
}

/// A task in `workspace`, stage `implement` of a one-stage pipeline,
/// priority `normal`, 3 attempts, no dependencies, requirements or budgets.
pub fn new_task(workspace: &str, title: &str) -> NewTask {
    NewTask {
        id: new_id(),
        workspace: workspace.to_string(),
        title: title.to_string(),
        body: format!("body of {title}"),
        stage: "implement".to_string(),
        priority: "normal".to_string(),
        dedup_key: None,
        pipeline: Vec::new(),
        max_attempts: 3,
        depends_on: Vec::new(),
        requires: Vec::new(),
        budget: TaskBudget::default(),
    }
}

/// An action of `run_id` numbered `seq`, as a playbook's host call would
/// hand it to the store.
pub fn action(
    workspace: &str,
    run_id: &str,
    seq: i64,
    call: &str,
    target: Option<&str>,
) -> ActionRow {
    ActionRow {
        run_id: run_id.to_string(),
        seq,
        workspace: workspace.to_string(),
        plugin: "repair".to_string(),
        digest: "sha256:repair".to_string(),
        actor: "tester".to_string(),
        call: call.to_string(),
        target: target.map(str::to_string),
        args: json!({"target": target}),
        status: "planned".to_string(),
        before: None,
        after: None,
        detail: None,
        at: 1_700_000_000_000 + seq,
    }
}

/// A claim of up to `max` stages in `workspace` by `worker` at `now`, with
/// a 30 s lease, any stage, no open breaker and no caps.
pub fn claim_req(workspace: &str, worker: &str, max: i64, now: i64) -> ClaimRequest {
    ClaimRequest {
        workspace: workspace.to_string(),
        worker_id: worker.to_string(),
        lease_ms: LEASE_MS,
        max,
        stages: Vec::new(),
        open_breakers: Vec::new(),
        limits: LeaseLimits::default(),
        now,
    }
}

/// The lease of [`claim_req`].
pub const LEASE_MS: i64 = 30_000;

/// The ids of claimed tasks, in claim order.
pub fn claimed_ids(claimed: &[Claimed]) -> Vec<String> {
    claimed.iter().map(|c| c.task.id.clone()).collect()
}

/// Sets a task's `created_at` (claim order among equal priorities).
pub async fn set_created_at(id: &str, created_at: i64) -> TestResult {
    raw_execute(&format!(
        "UPDATE tasks SET created_at = {created_at} WHERE id = '{id}'"
    ))
    .await
}
