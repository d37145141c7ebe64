//! `GET /v1/models` and `GET /v1/models/{model}`.

use serde_json::{Value, json};
use warden_test_upstream::Options;

use crate::{client, openai_error, start_with};

#[tokio::test]
async fn models_lists_the_configured_models_behind_the_api_key() {
    let u = start_with(Options {
        name: "primary".into(),
        models: vec!["model-a".into(), "model-b".into()],
        api_key: Some("k".into()),
        ..Options::default()
    })
    .await;
    let c = client();
    let url = format!("{}/models", u.base_url());
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    let v: Value = c
        .get(&url)
        .bearer_auth("k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v,
        json!({ "object": "list", "data": [
            { "id": "model-a", "object": "model", "created": 0, "owned_by": "primary" },
            { "id": "model-b", "object": "model", "created": 0, "owned_by": "primary" },
        ] })
    );
    let one: Value = c
        .get(format!("{url}/model-b"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "model-b");
    let missing = c
        .get(format!("{url}/model-z"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let v: Value = missing.json().await.unwrap();
    assert_eq!(openai_error(&v)["code"], "model_not_found");
    let paths: Vec<String> = u.handle().requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/v1/models",
            "/v1/models",
            "/v1/models/model-b",
            "/v1/models/model-z"
        ]
    );
}

#[tokio::test]
async fn unknown_routes_get_an_openai_404() {
    let u = start_with(Options::default()).await;
    let r = client()
        .post(format!("{}/embeddings", u.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        openai_error(&v)["message"],
        "Invalid URL (POST /v1/embeddings)"
    );
    assert_eq!(u.handle().request_count(), 0, "not an OpenAI route served");
}
