//! Issue 15 (items 10 to 12): the bounds on what a client, an agent or a
//! managed process can make the host hold, and the shutdown that ends
//! everything within a deadline (SPEC RL-5, SE-4). Each test pins a
//! defect found in review: it failed before the fix.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use warden_test_artifacts as artifacts;

use crate::{ADMIN, PgSchema, Sse, TestServer, install};

fn addr(s: &TestServer) -> SocketAddr {
    s.url.trim_start_matches("http://").parse().unwrap()
}

/// Reads until the server closes the connection, at most `within`: what
/// it sent and when it closed, or `None` while it is still open.
async fn closed_within(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    within: Duration,
) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((
                    String::from_utf8_lossy(&got).into_owned(),
                    started.elapsed(),
                ));
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// One `GET /health` on an open connection; true when answered 200.
async fn health_on(stream: &mut TcpStream) -> bool {
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: warden\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        _ => false,
    }
}

/// A connection to `to` from the loopback address `from` (127.0.0.x).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

// ---- item 10: shutdown and connections ----

/// Regression (RL-5): SIGTERM never finished while a task event stream
/// was open (it ends only when its task does, and `axum::serve` waited for
/// every connection without a deadline), nor while a client sent its
/// headers a byte at a time; leases held by workers stayed until they
/// expired. Now the host exits within 15 s, the stream ends, the
/// slowloris connection is closed, the run in flight finishes, and the
/// worker's lease goes back to the queue at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_stream_and_a_slowloris_open_exits_within_15_s_and_releases_leases() {
    sigterm_case("SQLite", "").await;
    let name = "sigterm_with_a_stream_and_a_slowloris_open_exits_within_15_s_and_releases_leases";
    let Some(pg) = PgSchema::create(name).await else {
        return;
    };
    sigterm_case("PostgreSQL", &format!("database_url = \"{}\"\n", pg.url)).await;
    pg.drop().await;
}

async fn sigterm_case(db: &str, extra: &str) {
    let dir = tempfile::tempdir().unwrap();
    install(&dir.path().join("plugins"), artifacts::SLOW, "slow.wasm");
    let mut s = TestServer::spawn_binary(dir, extra).await;
    let ws = "/v1/workspaces/default";

    // A worker holds a lease for ten minutes.
    let (status, task) = s
        .post(
            &format!("{ws}/tasks"),
            &json!({ "title": "held", "pipeline": ["work"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    let (status, body) = s
        .post(
            &format!("{ws}/tasks/claim"),
            &json!({ "worker_id": "w1", "max": 1, "lease_ms": 600_000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claim = body["claims"][0].clone();
    assert_eq!(claim["task_id"], id.as_str(), "{body}");

    // Its event stream, which ends only when the task is finished.
    let mut events = Sse::open(&s, &format!("{ws}/tasks/{id}/events/stream"), None).await;
    assert!(
        events.next().await.is_some(),
        "the stream sends the task's events"
    );

    // A client that sends its headers slowly, one line every 500 ms.
    let slow = TcpStream::connect(addr(&s)).await.unwrap();
    let (mut slow_read, mut slow_write) = slow.into_split();
    slow_write
        .write_all(b"GET /v1/status HTTP/1.1\r\nhost: warden\r\n")
        .await
        .unwrap();
    let dribble = tokio::spawn(async move {
        for i in 0..100 {
            if slow_write
                .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    // A playbook run of 2 s in flight.
    let (status, run) = s
        .post(
            &format!("{ws}/playbooks/slow/runs"),
            &json!({ "input": 2000 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let (_, r) = s.get(&format!("{ws}/runs/{run_id}")).await;
        if r["status"] == "running" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "run never started: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (took, exit) = s.sigterm(Duration::from_secs(15)).await;
    println!("{db}: SIGTERM to exit took {took:?} ({exit:?})");
    let exit = exit.unwrap_or_else(|| panic!("{db}: warden still running {took:?} after SIGTERM"));
    assert!(exit.success(), "{db}: {exit:?}");

    // The event stream ended (cleanly: the body was finished) ...
    while events.next().await.is_some() {}
    // ... and the slowloris connection was closed.
    let closed = closed_within(&mut slow_read, Duration::from_secs(2)).await;
    assert!(
        closed.is_some(),
        "{db}: the slowloris connection is still open"
    );
    dribble.abort();

    let dir = s.stop().await;
    let s = TestServer::spawn_binary(dir, extra).await;
    // The lease went back to the queue at shutdown, not in ten minutes.
    let (_, t) = s.get(&format!("{ws}/tasks/{id}")).await;
    assert_eq!(t["state"], "queued", "{db}: {t}");
    let (_, ev) = s.get(&format!("{ws}/tasks/{id}/events")).await;
    let released = ev["events"].as_array().unwrap().iter().any(|e| {
        e["type"] == "status"
            && e["data"]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("lease released"))
    });
    assert!(released, "{db}: no release event: {ev}");
    // The worker whose lease was released is refused like any stale lease.
    let (status, body) = s
        .post(
            &format!("{ws}/tasks/{id}/complete"),
            &json!({ "token": claim["token"], "output": {} }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{db}: {body}");
    // The run in flight finished within the drain.
    let (_, r) = s.get(&format!("{ws}/runs/{run_id}")).await;
    assert_eq!(r["status"], "succeeded", "{db}: {r}");
    s.stop().await;
}

/// Regression: no header-read timeout was active (`axum::serve` sets no
/// timer), so a client sending a header line every 200 ms, or a connection
/// that sends nothing, held a connection and a task forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed_after_the_header_read_timeout() {
    let s = TestServer::start(
        "[http]\nrate_limit_per_sec = 100000\nunauthenticated_per_sec = 100000\nheader_read_timeout_ms = 1000\n",
    )
    .await;
    let opened = Instant::now();
    let mut idle = TcpStream::connect(addr(&s)).await.unwrap();
    let slow = TcpStream::connect(addr(&s)).await.unwrap();
    let (mut slow_read, mut slow_write) = slow.into_split();
    slow_write
        .write_all(b"GET /health HTTP/1.1\r\nhost: warden\r\n")
        .await
        .unwrap();
    let dribble = tokio::spawn(async move {
        for i in 0..50 {
            if slow_write
                .write_all(format!("x-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    closed_within(&mut idle, Duration::from_secs(5))
        .await
        .expect("the idle connection is closed");
    let idle_after = opened.elapsed();
    let (answer, _) = closed_within(&mut slow_read, Duration::from_secs(5))
        .await
        .expect("the slow connection is closed");
    let slow_after = opened.elapsed();
    dribble.abort();
    println!("idle closed after {idle_after:?}, slowloris after {slow_after:?}: {answer:?}");
    assert!(idle_after < Duration::from_secs(3), "{idle_after:?}");
    assert!(slow_after < Duration::from_secs(3), "{slow_after:?}");
    // A client that sends its request at once is served.
    let mut prompt = TcpStream::connect(addr(&s)).await.unwrap();
    assert!(health_on(&mut prompt).await);
    s.stop().await;
}

/// Regression: a request body could stall for the whole request timeout
/// (330 s) while holding its connection; a body that sends nothing for
/// `body_idle_timeout_ms` is now refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stalls_is_refused() {
    let s = TestServer::start(
        "[http]\nrate_limit_per_sec = 100000\nunauthenticated_per_sec = 100000\nbody_idle_timeout_ms = 500\n",
    )
    .await;
    let mut c = TcpStream::connect(addr(&s)).await.unwrap();
    c.write_all(
        format!(
            "POST /v1/workspaces/default/tasks HTTP/1.1\r\nhost: warden\r\nauthorization: Bearer {ADMIN}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"title\""
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    println!("answered after {:?}: {answer}", started.elapsed());
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("INVALID_ARGUMENT"), "{answer}");
    s.stop().await;
}

/// Regression: connections were not capped at all; one address could open
/// as many as the process had file descriptors. Over a cap the client gets
/// a 503 in the error envelope and the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_per_address_and_in_total() {
    let s = TestServer::start(
        "[http]\nrate_limit_per_sec = 100000\nunauthenticated_per_sec = 100000\nmax_connections = 6\nmax_connections_per_addr = 4\n",
    )
    .await;
    let to = addr(&s);
    let mut first = Vec::new();
    for _ in 0..4 {
        let mut c = connect_from([127, 0, 0, 1], to).await;
        assert!(health_on(&mut c).await);
        first.push(c);
    }
    let mut fifth = connect_from([127, 0, 0, 1], to).await;
    let (answer, _) = closed_within(&mut fifth, Duration::from_secs(5))
        .await
        .expect("the fifth connection is answered and closed");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("127.0.0.1 has 4 connections open, the limit per address"),
        "{answer}"
    );
    // Another address has its own four ...
    let mut second = Vec::new();
    for _ in 0..2 {
        let mut c = connect_from([127, 0, 0, 2], to).await;
        assert!(health_on(&mut c).await);
        second.push(c);
    }
    // ... up to the total.
    let mut seventh = connect_from([127, 0, 0, 3], to).await;
    let (answer, _) = closed_within(&mut seventh, Duration::from_secs(5))
        .await
        .expect("the seventh connection is answered and closed");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("the server has 6 connections open"),
        "{answer}"
    );
    // A closed connection frees its place.
    drop(first.pop());
    let started = Instant::now();
    loop {
        let mut c = connect_from([127, 0, 0, 1], to).await;
        if health_on(&mut c).await {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}

async fn stream_status(
    s: &TestServer,
    path: &str,
    token: &str,
) -> (StatusCode, Option<reqwest::Response>) {
    let resp = s
        .client
        .get(format!("{}{path}", s.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, status.is_success().then_some(resp))
}

/// Regression: a token could open any number of event streams, each a
/// connection plus a task reading the database every second. Task, run
/// and status streams now count against `max_streams_per_token`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_per_token() {
    let s = TestServer::start(
        "[http]\nrate_limit_per_sec = 100000\nunauthenticated_per_sec = 100000\nmax_streams_per_token = 2\n",
    )
    .await;
    let ws = "/v1/workspaces/default";
    let (_, task) = s
        .post(&format!("{ws}/tasks"), &json!({ "title": "watched" }))
        .await;
    let task_stream = format!("{ws}/tasks/{}/events/stream", task["id"].as_str().unwrap());
    let status_stream = format!("{ws}/status/stream");
    let (a, first) = stream_status(&s, &task_stream, ADMIN).await;
    let (b, _second) = stream_status(&s, &status_stream, ADMIN).await;
    assert_eq!((a, b), (StatusCode::OK, StatusCode::OK));
    let (status, body) = s.get(&task_stream).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "RESOURCE_EXHAUSTED", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 event streams open"),
        "{body}"
    );
    // Another token has its own.
    let (_, t) = s
        .post(
            &format!("{ws}/tokens"),
            &json!({ "name": "viewer", "role": "viewer" }),
        )
        .await;
    let viewer = t["token"].as_str().unwrap();
    let (status, _other) = stream_status(&s, &task_stream, viewer).await;
    assert_eq!(status, StatusCode::OK);
    // A stream the client closes frees its place.
    drop(first);
    let started = Instant::now();
    loop {
        let (status, resp) = stream_status(&s, &task_stream, ADMIN).await;
        if status == StatusCode::OK {
            drop(resp);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the closed stream's place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "a closed stream's place was free after {:?}",
        started.elapsed()
    );
    s.stop().await;
}

// ---- item 11: managed processes ----

/// Regression: a managed process inherited Warden's whole environment,
/// secrets included (the admin token, provider API keys), and its output
/// was read line by line without a cap, so a process that printed without
/// newlines made Warden buffer all of it. Now it starts from a clean
/// environment plus `inherit_env` and its own `env`, and long lines are
/// cut as they are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_process_gets_a_clean_environment_and_its_long_lines_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("env.txt");
    let log = dir.path().join("warden.log");
    let script = "env > \"$OUT\"; head -c 3000000 /dev/zero | tr '\\0' a; echo; echo after-the-long-line; exec sleep 3600";
    let extra = format!(
        "[[processes]]\nname = \"talker\"\ncommand = [\"sh\", \"-c\", \"{}\"]\nenv = {{ OUT = \"{}\", GREETING = \"hello\" }}\n",
        script.replace('\\', "\\\\").replace('"', "\\\""),
        env_file.display()
    );
    let s = TestServer::spawn_binary_with(
        dir,
        &extra,
        &[
            ("WARDEN_ADMIN_TOKEN", ADMIN),
            ("OPENAI_API_KEY", "sk-secret-of-warden"),
            ("RUST_LOG", "warn,warden_core::processes=info"),
        ],
        Some(&log),
    )
    .await;
    let started = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("after-the-long-line") {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the process's last line never reached the log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let env = std::fs::read_to_string(&env_file).unwrap();
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    println!("the process's environment: {names:?}");
    assert!(env.lines().any(|l| l == "GREETING=hello"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    for secret in ["WARDEN_ADMIN_TOKEN", "OPENAI_API_KEY", "RUST_LOG"] {
        assert!(!names.contains(&secret), "{secret} leaked: {env}");
    }
    assert!(!env.contains(ADMIN) && !env.contains("sk-secret"), "{env}");
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    println!("longest log line: {longest} bytes");
    assert!(longest < 20_000, "a log line of {longest} bytes");
    assert!(
        text.contains("[line cut: 2983616 more bytes dropped]"),
        "no cut marker in the log"
    );
    drop(s);
}

// ---- item 12: smaller bounds ----

/// Regression: a claim's `stages` list was neither capped nor checked; each
/// entry became a bound parameter, so 70,000 of them went past SQLite's
/// bind limit and the worker got a 503 for what is bad input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_stages_are_capped_and_validated() {
    let sqlite = TestServer::start("").await;
    claim_stages_case("SQLite", &sqlite).await;
    sqlite.stop().await;
    let Some(pg) = PgSchema::create("claim_stages_are_capped_and_validated").await else {
        return;
    };
    let postgres = TestServer::start(&format!("database_url = \"{}\"\n", pg.url)).await;
    claim_stages_case("PostgreSQL", &postgres).await;
    postgres.stop().await;
    pg.drop().await;
}

async fn claim_stages_case(db: &str, s: &TestServer) {
    let ws = "/v1/workspaces/default";
    let (status, _) = s
        .post(
            &format!("{ws}/tasks"),
            &json!({ "title": "t", "pipeline": ["work"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let many: Vec<String> = (0..70_000).map(|i| format!("s{i}")).collect();
    let (status, body) = s
        .post(
            &format!("{ws}/tasks/claim"),
            &json!({ "worker_id": "w", "stages": many }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{db}: {body}");
    assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{db}");
    assert_eq!(
        body["error"]["message"], "stages names 70000 stages; a claim may name at most 64",
        "{db}"
    );
    let (status, body) = s
        .post(
            &format!("{ws}/tasks/claim"),
            &json!({ "worker_id": "w", "stages": ["work", "no such stage!"] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{db}: {body}");
    assert_eq!(
        body["error"]["message"], "invalid stage id \"no such stage!\"",
        "{db}"
    );
    // 64 names, repeats allowed, claim as before.
    let mut ok: Vec<String> = (0..62).map(|i| format!("other-{i}")).collect();
    ok.extend(["work".to_string(), "work".to_string()]);
    let (status, body) = s
        .post(
            &format!("{ws}/tasks/claim"),
            &json!({ "worker_id": "w", "stages": ok }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{db}: {body}");
    assert_eq!(body["claims"].as_array().unwrap().len(), 1, "{db}: {body}");
}

/// Regression: every request with an unknown token cost a database lookup
/// and nothing limited them by client (the rate limit was per token, and
/// a random token is a new one each time). Now a request that cannot be
/// answered from memory takes from its address's bucket first: past it,
/// 429 without touching the database. Shown with the database closed:
/// the first requests fail in the lookup (503), the rest never get there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_are_limited_by_address_before_the_database() {
    unauthenticated_case("SQLite", "").await;
    let name = "unauthenticated_requests_are_limited_by_address_before_the_database";
    let Some(pg) = PgSchema::create(name).await else {
        return;
    };
    unauthenticated_case("PostgreSQL", &format!("database_url = \"{}\"\n", pg.url)).await;
    pg.drop().await;
}

async fn unauthenticated_case(db: &str, extra: &str) {
    let s = TestServer::start(&format!(
        "{extra}[http]\nrate_limit_per_sec = 100000\nunauthenticated_per_sec = 5\n"
    ))
    .await;
    let path = "/v1/workspaces/default/tasks";
    // Known tokens are answered from memory: not limited by address.
    for _ in 0..60 {
        let (status, body) = s.get(path).await;
        assert_eq!(status, StatusCode::OK, "{db}: {body}");
    }
    s.app().store.close().await;
    let mut counts = std::collections::BTreeMap::new();
    let mut limited = None;
    for i in 0..40 {
        let (status, body) = s
            .request(
                reqwest::Method::GET,
                path,
                Some(&format!("wdn_random_{i}")),
                None,
            )
            .await;
        *counts.entry(status.as_u16()).or_insert(0) += 1;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(body);
        }
    }
    println!("{db}: 40 requests with random tokens, the database closed: {counts:?}");
    let limited = limited.unwrap_or_else(|| panic!("{db}: nothing was limited: {counts:?}"));
    assert_eq!(limited["error"]["code"], "RESOURCE_EXHAUSTED");
    assert!(
        limited["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too many unauthenticated requests from 127.0.0.1"),
        "{limited}"
    );
    // Bursts of twice the rate reach the database; the rest do not.
    assert!(
        counts.get(&503).copied().unwrap_or(0) <= 12,
        "{db}: {counts:?}"
    );
    assert!(
        counts.get(&429).copied().unwrap_or(0) >= 28,
        "{db}: {counts:?}"
    );
    // No token at all counts too.
    let (status, _) = s.request(reqwest::Method::GET, path, None, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{db}");
    s.stop().await;
}

/// Regression: `admin.token` was created 0600 but never checked again, so
/// one restored or copied with 0644 stayed readable by every user, and the
/// data directory (database, token, plugins) was created with the umask's
/// mode. Both are made private on every start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_and_the_data_directory_are_private_on_every_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token_file = data.join("admin.token");
    let secret = "wdn_restored_from_a_backup_0123456789abcdef";
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(&token_file, format!("{secret}\n")).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let set = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    // The configuration names no admin token: the file's is used.
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nplugin_dir = \"{}\"\nbundled_plugins = false\n",
        data.display(),
        dir.path().join("plugins").display()
    );
    for round in 0..2 {
        set(&data, 0o755);
        set(&token_file, 0o644);
        let config = warden_server::Config::parse(&text).unwrap();
        config.validate().unwrap();
        let server = warden_server::start(config).await.unwrap();
        assert_eq!(mode(&data), 0o700, "start {round}: the data directory");
        assert_eq!(mode(&token_file), 0o600, "start {round}: admin.token");
        let resp = reqwest::Client::new()
            .get(format!("http://{}/v1/plugins", server.addr))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "the restored token still works"
        );
        server.shutdown(Duration::from_secs(5)).await;
    }
    // A fresh directory gets a new token, both private.
    let fresh = dir.path().join("fresh");
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nplugin_dir = \"{}\"\nbundled_plugins = false\n",
        fresh.display(),
        dir.path().join("plugins").display()
    );
    let server = warden_server::start(warden_server::Config::parse(&text).unwrap())
        .await
        .unwrap();
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("admin.token")), 0o600);
    server.shutdown(Duration::from_secs(5)).await;
}

async fn sleep_agent(s: &TestServer, agent: &str) -> (StatusCode, Value) {
    let resp = s
        .client
        .post(format!(
            "{}/v1/workspaces/default/agents/{agent}/sleep",
            s.url
        ))
        .bearer_auth(ADMIN)
        .body(format!("state of {agent}"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Regression: agent ids are the client's choice and each keeps 20
/// versions of up to 8 MiB, with no cap on agents: one token could fill
/// the database. New agents are refused past `max_agents_per_workspace`,
/// and deleting an agent's checkpoints frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_agents_per_workspace_are_capped() {
    let cap = "[checkpoints]\nmax_agents_per_workspace = 2\n";
    let sqlite = TestServer::start(cap).await;
    checkpoint_case("SQLite", &sqlite).await;
    sqlite.stop().await;
    let Some(pg) = PgSchema::create("checkpoint_agents_per_workspace_are_capped").await else {
        return;
    };
    let postgres = TestServer::start(&format!("database_url = \"{}\"\n{cap}", pg.url)).await;
    checkpoint_case("PostgreSQL", &postgres).await;
    postgres.stop().await;
    pg.drop().await;
}

async fn checkpoint_case(db: &str, s: &TestServer) {
    for agent in ["a1", "a2"] {
        let (status, body) = sleep_agent(s, agent).await;
        assert_eq!(status, StatusCode::CREATED, "{db}: {body}");
    }
    let (status, body) = sleep_agent(s, "a3").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{db}: {body}");
    assert_eq!(body["error"]["code"], "RESOURCE_EXHAUSTED");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("workspace \"default\" has checkpoints of 2 agents, the limit"),
        "{body}"
    );
    let (status, _) = s.get("/v1/workspaces/default/agents/a3/wake").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{db}: nothing stored for a3");
    // A known agent still stores versions.
    let (status, body) = sleep_agent(s, "a1").await;
    assert_eq!(status, StatusCode::CREATED, "{db}: {body}");
    assert_eq!(body["version"], 2);
    let (status, body) = s
        .request(
            reqwest::Method::DELETE,
            "/v1/workspaces/default/agents/a2/checkpoints",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{db}: {body}");
    assert_eq!(body, json!({ "deleted": true, "versions": 1 }));
    let (status, body) = sleep_agent(s, "a3").await;
    assert_eq!(status, StatusCode::CREATED, "{db}: {body}");
}
