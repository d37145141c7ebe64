//! The stand-in over real HTTP on loopback: replies, streams, failure
//! modes, the control API and the binary.

mod binary;
mod chat;
mod control;
mod failures;
mod load;
mod models;
mod stream;

use serde_json::{Value, json};
use warden_test_upstream::{Options, Upstream};

/// An upstream named `name` with default options otherwise.
async fn start(name: &str) -> Upstream {
    start_with(Options {
        name: name.to_string(),
        ..Options::default()
    })
    .await
}

async fn start_with(options: Options) -> Upstream {
    Upstream::start(options).await.expect("start the stand-in")
}

/// A client that does not retry or pool across tests.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client")
}

fn chat_url(u: &Upstream) -> String {
    format!("{}/chat/completions", u.base_url())
}

/// A chat request with one message of `content`.
fn chat_body(content: &str) -> Value {
    json!({ "model": "model-a", "messages": [{ "role": "user", "content": content }] })
}

/// A streamed chat request, asking for the usage chunk or not.
fn stream_body(include_usage: bool) -> Value {
    json!({
        "model": "model-a", "stream": true,
        "stream_options": { "include_usage": include_usage },
        "messages": [{ "role": "user", "content": "12345678" }],
    })
}

/// POSTs `body` as JSON to `url`.
async fn post(c: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    c.post(url).json(body).send().await.expect("request")
}

/// One event of an SSE body.
#[derive(Debug, PartialEq)]
enum Event {
    Chunk(Value),
    Done,
}

/// Parses an SSE body as OpenAI sends it: `data: <payload>\n\n` events and
/// nothing else, `[DONE]` last.
fn events(text: &str) -> Vec<Event> {
    assert!(text.ends_with("\n\n"), "the body ends an event: {text:?}");
    text.strip_suffix("\n\n")
        .unwrap_or(text)
        .split("\n\n")
        .map(|e| {
            let data = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"));
            assert!(!data.contains('\n'), "one line per event: {e:?}");
            if data == "[DONE]" {
                Event::Done
            } else {
                Event::Chunk(serde_json::from_str(data).expect("a JSON chunk"))
            }
        })
        .collect()
}

/// Asserts `body` is an OpenAI-shaped error and returns its `error`.
fn openai_error(body: &Value) -> &Value {
    let e = &body["error"];
    assert!(e["message"].is_string(), "{body}");
    assert!(e["type"].is_string(), "{body}");
    assert!(e.get("code").is_some(), "{body}");
    assert!(e.get("param").is_some(), "{body}");
    e
}
