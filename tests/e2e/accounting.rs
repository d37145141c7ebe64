//! Accounting cannot be poisoned (issue 15, items 3 and 12): a worker's
//! `token` event with absurd figures is refused before it is stored, an
//! upstream `usage` that overflows or is negative is booked within bounds,
//! and a call record the database refuses is set aside by the gateway's
//! writer instead of holding up every call after it. On SQLite and
//! PostgreSQL.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_test_upstream::Behavior;

use crate::gateway::{CANDIDATES, Upstreams, chat, config, hello, installed, token, upstreams};
use crate::{PgSchema, TestServer};

/// The database under a test server, for what only the database can do.
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

/// Makes the database refuse every gateway call asking for model
/// `poison-model`: a row it refuses for a reason no check in Warden
/// foresaw (a trigger stands in for it: a constraint added later, a value
/// the driver cannot encode, ...).
async fn refuse_poison_rows(db: &Db) {
    use sqlx::Connection as _;
    match db {
        Db::Sqlite(path) => {
            let url = format!("sqlite://{}", path.display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(
                "CREATE TRIGGER poison BEFORE INSERT ON gateway_calls \
                 WHEN NEW.requested_model = 'poison-model' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned row (test)'); END",
            )
            .execute(&mut c)
            .await
            .unwrap();
        }
        Db::Postgres(url) => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
                 IF NEW.requested_model = 'poison-model' THEN RAISE EXCEPTION 'poisoned row (test)'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql",
            )
            .execute(&mut c)
            .await
            .unwrap();
            sqlx::query(
                "CREATE TRIGGER poison BEFORE INSERT ON gateway_calls \
                 FOR EACH ROW EXECUTE FUNCTION poison()",
            )
            .execute(&mut c)
            .await
            .unwrap();
        }
    }
}

/// Waits up to `within` until the workspace's booked calls satisfy `ok`.
async fn booked(
    s: &TestServer,
    ws: &str,
    within: Duration,
    ok: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let (status, body) = s
            .get(&format!("/v1/workspaces/{ws}/gateway/calls?limit=1000"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let calls = body["calls"].as_array().cloned().unwrap_or_default();
        if ok(&calls) || started.elapsed() > within {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn report(s: &TestServer, ws: &str, task: &str, data: Value) -> (StatusCode, Value) {
    s.post(
        &format!("/v1/workspaces/{ws}/tasks/{task}/events"),
        &json!({ "type": "token", "data": data }),
    )
    .await
}

async fn poison_and_keep_booking(u: &Upstreams, s: &TestServer, db: &Db) {
    let key = token(s, "acct", "agent").await;
    let other = token(s, "other", "agent").await;
    let (status, task) = s
        .post(
            "/v1/workspaces/acct/tasks",
            &json!({ "title": "poisoned", "pipeline": ["plan"], "budget": { "tokens": 100000000000_i64 } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let id = task["id"].as_str().unwrap().to_string();

    // Token events with figures no call has: a clear 400, nothing stored.
    for (data, needle) in [
        (
            json!({ "tokens": i64::MAX }),
            "token event reports \"9223372036854775807\" tokens, over the 1000000000 one event may book ([scheduler] max_event_tokens)",
        ),
        (
            json!({ "input_tokens": i64::MAX, "output_tokens": i64::MAX }),
            "token event reports \"18446744073709551614\" tokens",
        ),
        (
            json!({ "tokens": 10, "cost_usd": 1e300 }),
            "token event reports cost_usd \"1e300\", over the $100000 one event may book ([scheduler] max_event_cost_usd)",
        ),
        (
            json!({ "input_tokens": -5, "output_tokens": 10 }),
            "must not be negative",
        ),
        (json!({ "tokens": 1e30 }), "invalid token event"),
    ] {
        let (status, body) = report(s, "acct", &id, data.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{data}: {body}");
        assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{data}: {message}");
    }
    let (_, events) = s
        .get(&format!("/v1/workspaces/acct/tasks/{id}/events"))
        .await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] != "token"),
        "a refused token event is not stored: {events}"
    );
    let (status, body) = report(s, "acct", &id, json!({ "tokens": 100, "cost_usd": 0.5 })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let h = [("x-warden-task", id.as_str())];
    // An upstream whose usage overflows 64 bits: booked at the cap of one
    // call, with a note.
    u.primary.handle().set(Behavior::Usage {
        usage: json!({ "prompt_tokens": u64::MAX, "completion_tokens": u64::MAX, "total_tokens": u64::MAX }),
    });
    let (status, headers, body) = chat(s, &key, hello("auto"), &h).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let overflow = headers["x-warden-call-id"].to_str().unwrap().to_string();
    // An upstream whose usage is negative: estimated, with a note.
    u.primary.handle().set(Behavior::Usage {
        usage: json!({ "prompt_tokens": -5, "completion_tokens": -7 }),
    });
    let (status, headers, body) = chat(s, &key, hello("auto"), &h).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let negative = headers["x-warden-call-id"].to_str().unwrap().to_string();
    u.primary.handle().set(Behavior::Healthy);

    // A call the database refuses to store.
    refuse_poison_rows(db).await;
    let (status, headers, body) = chat(s, &key, hello("poison-model"), &h).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let poisoned = headers["x-warden-call-id"].to_str().unwrap().to_string();

    // Calls after the poison, from the same workspace and another one,
    // are booked within 2 s.
    let (status, headers, _) = chat(s, &key, hello("auto"), &h).await;
    assert_eq!(status, StatusCode::OK);
    let after_same = headers["x-warden-call-id"].to_str().unwrap().to_string();
    let (status, headers, _) = chat(s, &other, hello("auto"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let after_other = headers["x-warden-call-id"].to_str().unwrap().to_string();
    let started = Instant::now();
    let has = |calls: &[Value], id: &str| calls.iter().any(|c| c["id"] == id);
    let acct = booked(s, "acct", Duration::from_secs(2), |c| has(c, &after_same)).await;
    let theirs = booked(s, "other", Duration::from_secs(2), |c| has(c, &after_other)).await;
    let took = started.elapsed();
    assert!(
        has(&acct, &after_same),
        "the call after the poison is booked within 2 s: {acct:?}"
    );
    assert!(
        has(&theirs, &after_other),
        "another workspace's call is booked within 2 s: {theirs:?}"
    );
    println!("calls after the poison booked within {took:?}");

    // The poisoned call was set aside, and counted.
    assert!(!has(&acct, &poisoned), "{acct:?}");
    let metrics = s
        .client
        .get(format!("{}/metrics", s.url))
        .bearer_auth(crate::ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "warden_gateway_rows_set_aside_total 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("set_aside"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The overflowing usage is booked at the cap of one call, the
    // negative one estimated; both say so.
    let call = |id: &str| acct.iter().find(|c| c["id"] == id).cloned().unwrap();
    let c = call(&overflow);
    assert_eq!(
        (c["prompt_tokens"].as_i64(), c["completion_tokens"].as_i64()),
        (Some(1_000_000_000), Some(0)),
        "{c}"
    );
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains("over the 1000000000 one call may book ([gateway] max_call_tokens)"),
        "{c}"
    );
    assert!(c["cost_usd"].as_f64().unwrap() > 0.0, "{c}");
    let c = call(&negative);
    assert!(c["prompt_tokens"].as_i64().unwrap() > 0, "{c}");
    assert!(
        c["error"].as_str().unwrap().contains("tokens estimated"),
        "{c}"
    );

    // Status, usage and budgets still answer: the task's usage adds up
    // (100 reported, a billion from the capped call, a few more), and the
    // workspace's hour refuses calls once its budget is set below it.
    let (status, t) = s.get(&format!("/v1/workspaces/acct/tasks/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let used = t["used"]["tokens"].as_i64().unwrap();
    assert!(
        (1_000_000_100..1_000_010_000).contains(&used),
        "the task's usage: {t}"
    );
    for path in [
        "/v1/workspaces/acct/status",
        "/v1/status",
        "/v1/workspaces/acct/usage?group_by=provider,model",
    ] {
        let (status, body) = s.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, body) = s
        .put(
            "/v1/workspaces/acct/settings",
            &json!({ "hourly_budget": { "tokens": 1000000 } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The budget is read back from the database within a second or two.
    let started = Instant::now();
    loop {
        let (status, _, body) = chat(s, &key, hello("auto"), &[]).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["error"]["code"], "RESOURCE_EXHAUSTED", "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("the hourly token budget of workspace \"acct\" is spent"),
                "{body}"
            );
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the spent hourly budget refuses calls"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Regression: a token event of `i64::MAX` tokens was stored and booked
/// (two such made the sums wrap), an upstream `usage` of `u64::MAX` was
/// booked as -1 tokens at `i64::MAX` micro-dollars, and one call the
/// database refused was retried forever, so that no call after it was
/// ever booked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoned_accounting_on_sqlite_books_everything_else() {
    let u = upstreams().await;
    let s = installed(TestServer::start(&config(&u, "router-config", CANDIDATES)).await).await;
    let db = Db::Sqlite(s.dir.path().join("data/warden.db"));
    poison_and_keep_booking(&u, &s, &db).await;
}

/// The same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoned_accounting_on_postgres_books_everything_else() {
    let Some(pg) = PgSchema::create("poisoned_accounting_on_postgres_books_everything_else").await
    else {
        return;
    };
    let u = upstreams().await;
    let text = format!(
        "database_url = \"{}\"\n{}",
        pg.url,
        config(&u, "router-config", CANDIDATES)
    );
    let s = installed(TestServer::start(&text).await).await;
    let db = Db::Postgres(pg.url.clone());
    poison_and_keep_booking(&u, &s, &db).await;
    s.stop().await;
    pg.drop().await;
}
