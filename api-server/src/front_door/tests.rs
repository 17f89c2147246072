//! The door over real HTTP: the router served on a loopback port, hit with reqwest.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use llorch_manifests::api::Snapshot;
use reqwest::StatusCode;
use tokio::sync::watch;

use super::*;
use crate::AppState;
use crate::sources::{NoEvents, NoLogs};

const TOKEN: &str = "0123456789abcdef0123";

fn door(optional_on_loopback: bool, open_metrics: bool, origins: &[&str]) -> FrontDoor {
    let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
    FrontDoor::new(
        Tokens::parse("tokens.yaml", &format!("laptop: {TOKEN}\n")).unwrap(),
        optional_on_loopback,
        open_metrics,
        Screen::new(&[], &origins).unwrap(),
    )
}

/// Serves the router with `door` on a loopback port; returns its base URL.
async fn serve(door: FrontDoor) -> String {
    let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    std::mem::forget(_tx);
    let state = AppState::new(rx, Arc::new(NoEvents), Arc::new(NoLogs)).with_front_door(door);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(crate::serve(listener, state, std::future::pending()));
    url
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn with_a_token_every_route_but_healthz_needs_it() {
    let url = serve(door(false, false, &[])).await;
    let http = client();
    let healthz = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);

    let bare = http.get(format!("{url}/v2/pools")).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert!(
        bare.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"),
        "{:?}",
        bare.headers()
    );
    let body: serde_json::Value = bare.json().await.unwrap();
    assert_eq!(body["code"], "UNAUTHORIZED", "{body}");

    let wake = http.post(format!("{url}/v2/pools/chat/wake")).send().await.unwrap();
    assert_eq!(
        wake.status(),
        StatusCode::UNAUTHORIZED,
        "a pool's wake sits behind the door too"
    );

    let wrong = http
        .get(format!("{url}/v2/pools"))
        .bearer_auth("x".repeat(20))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body = wrong.text().await.unwrap();
    assert!(
        !body.contains(&"x".repeat(20)),
        "the presented token is not echoed: {body}"
    );

    let metrics = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(
        metrics.status(),
        StatusCode::UNAUTHORIZED,
        "/metrics is closed unless openMetrics"
    );

    let right = http
        .get(format!("{url}/v2/pools"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_ne!(right.status(), StatusCode::UNAUTHORIZED);
    assert_ne!(right.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn openai_routes_get_openai_error_bodies() {
    let url = serve(door(false, false, &[])).await;
    let r = client().get(format!("{url}/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("API key"), "{body}");
}

#[tokio::test]
async fn loopback_and_metrics_can_be_opened_by_config() {
    let url = serve(door(true, true, &[])).await;
    let http = client();
    let r = http.get(format!("{url}/v2/pools")).send().await.unwrap();
    assert_ne!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a loopback client under optionalOnLoopback"
    );
    let r = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A wrong token is still wrong, even where none is needed.
    let r = http
        .get(format!("{url}/v2/pools"))
        .bearer_auth("y".repeat(20))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cross_site_writes_are_refused_before_any_handler() {
    let url = serve(FrontDoor::loopback_only()).await;
    let http = client();
    let task = r#"{"pool":"chat","prompt":"hi","max_tokens":4}"#;
    // The attack from the issue: a page's text/plain POST.
    let r = http
        .post(format!("{url}/v2/tasks"))
        .header("content-type", "text/plain")
        .header("origin", "http://evil.example")
        .body(task)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "FORBIDDEN");
    assert!(body["message"].as_str().unwrap().contains("evil.example"), "{body}");

    // Without an Origin, a write still has to declare JSON.
    let r = http
        .post(format!("{url}/v2/tasks"))
        .header("content-type", "text/plain")
        .body(task)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = http.post(format!("{url}/v2/pools/chat/drain")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "a write without a body too"
    );

    // DNS rebinding: a foreign Host.
    let r = http
        .get(format!("{url}/v2/snapshot"))
        .header("host", "evil.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // A no-cors cross-site GET (an <img> tag).
    let r = http
        .get(format!("{url}/v2/snapshot"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_allowed_origin_gets_cors_preflights_and_headers() {
    let url = serve(door(false, false, &["http://localhost:3000"])).await;
    let http = client();
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{url}/v2/tasks"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );

    let r = http
        .get(format!("{url}/v2/pools"))
        .header("origin", "http://localhost:3000")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "http://localhost:3000");

    let other = http
        .request(reqwest::Method::OPTIONS, format!("{url}/v2/tasks"))
        .header("origin", "http://localhost:3001")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN, "another origin's preflight");
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn slow_and_idle_connections_are_cut_off_after_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let state = AppState::new(rx, Arc::new(NoEvents), Arc::new(NoLogs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let timeout = std::time::Duration::from_millis(300);
    tokio::spawn(crate::serve_with(listener, state, std::future::pending(), timeout));
    // A slow loris: half a header, then nothing.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    // A connection that never asks anything.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    for conn in [&mut slow, &mut idle] {
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0) | Err(_))),
            "the server closes it (got {closed:?})"
        );
    }
    // A whole request still gets its answer.
    let r = client().get(format!("http://{addr}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn identities_read_as_the_logs_write_them() {
    assert_eq!(Identity::Localhost.to_string(), "localhost");
    assert_eq!(Identity::Token("laptop".into()).to_string(), "token:laptop");
}

#[test]
fn json_is_recognized_with_parameters() {
    let mut h = HeaderMap::new();
    assert!(!declares_json(&h));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    assert!(declares_json(&h));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    assert!(!declares_json(&h));
}
