//! The status page's two server-side parts on a real socket: the static files under `/ui`
//! (served without a token but behind the `Host`/`Origin` screen, with a strict CSP and an
//! ETag) and the live feed `GET /v2/events/stream` (the snapshot, then new events and
//! changes; a slow reader is told it lagged; the stream ends when the server closes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use llorch_api::front_door::{FrontDoor, Screen, Tokens};
use llorch_api::sources::{NoEvents, NoLogs};
use llorch_api::{AppState, EventSource};
use llorch_manifests::ObjectRef;
use llorch_manifests::api::Snapshot;
use llorch_manifests::status::{Event, EventType};
use llorch_manifests::{Kind, Reason};
use tokio::sync::{broadcast, watch};

const TOKEN: &str = "0123456789abcdef0123";

/// Events from a channel the test sends on.
struct LiveEvents(broadcast::Sender<Event>);

impl EventSource for LiveEvents {
    fn recent(&self, _object: Option<&ObjectRef>, limit: usize) -> Vec<Event> {
        (0..limit.min(2)).map(|i| event(&format!("old {i}"))).collect()
    }
    fn subscribe(&self) -> Option<broadcast::Receiver<Event>> {
        Some(self.0.subscribe())
    }
}

fn event(message: &str) -> Event {
    Event {
        ts: "2026-01-01T00:00:00Z".into(),
        object: Some(ObjectRef::new(Kind::Pool, "chat")),
        replica: None,
        type_: EventType::Warning,
        reason: Reason::EngineCrashed,
        message: message.into(),
    }
}

struct Server {
    url: String,
    events: broadcast::Sender<Event>,
    publish: watch::Sender<Arc<Snapshot>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn start(door: FrontDoor, buffer: usize) -> Server {
    let (publish, rx) = watch::channel(Arc::new(Snapshot {
        instance: "first".into(),
        ..Snapshot::default()
    }));
    let events = broadcast::Sender::new(buffer);
    let state = AppState::new(rx, Arc::new(LiveEvents(events.clone())), Arc::new(NoLogs)).with_front_door(door);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(llorch_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        url,
        events,
        publish,
        stop: Some(stop),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn secured() -> FrontDoor {
    FrontDoor::new(
        Tokens::parse("tokens.yaml", &format!("laptop: {TOKEN}\n")).unwrap(),
        false,
        false,
        Screen::new(&[], &[]).unwrap(),
    )
}

/// Reads SSE frames (`(event, data)`) from a streaming response.
struct Frames {
    response: reqwest::Response,
    buffer: String,
}

impl Frames {
    /// The next frame, keep-alive comments skipped; `None` when the stream ended.
    async fn next(&mut self) -> Option<(String, serde_json::Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("a frame within 10 s")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn open(s: &Server, query: &str) -> Frames {
    let response = client()
        .get(format!("{}/v2/events/stream{query}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    Frames {
        response,
        buffer: String::new(),
    }
}

#[tokio::test]
async fn the_stream_opens_with_the_snapshot_and_backlog_then_follows_events_and_changes() {
    let s = start(FrontDoor::loopback_only(), 16).await;
    let mut frames = open(&s, "?backlog=2").await;
    let (name, data) = frames.next().await.unwrap();
    assert_eq!((name.as_str(), data["instance"].as_str()), ("snapshot", Some("first")));
    for i in 0..2 {
        let (name, data) = frames.next().await.unwrap();
        assert_eq!(
            (name.as_str(), data["message"].as_str()),
            ("event", Some(&*format!("old {i}")))
        );
    }
    s.events.send(event("engine died")).unwrap();
    let (name, data) = frames.next().await.unwrap();
    assert_eq!(name, "event");
    assert_eq!(
        (data["reason"].as_str(), data["message"].as_str()),
        (Some("EngineCrashed"), Some("engine died"))
    );
    s.publish.send_replace(Arc::new(Snapshot {
        instance: "second".into(),
        ..Snapshot::default()
    }));
    let (name, data) = frames.next().await.unwrap();
    assert_eq!((name.as_str(), data["instance"].as_str()), ("snapshot", Some("second")));
}

#[tokio::test]
async fn a_reader_that_falls_behind_gets_a_lagged_frame_not_an_unbounded_buffer() {
    let s = start(FrontDoor::loopback_only(), 4).await;
    let mut frames = open(&s, "").await;
    assert_eq!(frames.next().await.unwrap().0, "snapshot");
    // A current-thread runtime: the server does not run until the test awaits, so all ten
    // are sent before it reads one.
    for i in 0..10 {
        s.events.send(event(&format!("e{i}"))).unwrap();
    }
    let (name, data) = frames.next().await.unwrap();
    assert_eq!((name.as_str(), data["missed"].as_u64()), ("lagged", Some(6)));
    let (_, data) = frames.next().await.unwrap();
    assert_eq!(data["message"], "e6", "then the newest the buffer held");
}

#[tokio::test]
async fn a_burst_of_snapshot_changes_is_one_frame_with_the_latest() {
    let s = start(FrontDoor::loopback_only(), 4).await;
    let mut frames = open(&s, "").await;
    assert_eq!(frames.next().await.unwrap().0, "snapshot");
    for i in 0..20 {
        s.publish.send_replace(Arc::new(Snapshot {
            instance: format!("v{i}"),
            ..Snapshot::default()
        }));
        tokio::task::yield_now().await;
    }
    s.events.send(event("marker")).unwrap();
    // Changes are held for the minimum interval; the marker event is not.
    let mut snapshots = Vec::new();
    loop {
        let (name, data) = frames.next().await.unwrap();
        if name == "snapshot" {
            snapshots.push(data["instance"].as_str().unwrap().to_string());
            if snapshots.last().map(String::as_str) == Some("v19") {
                break;
            }
        }
    }
    assert!(snapshots.len() <= 2, "{snapshots:?}");
}

#[tokio::test]
async fn the_stream_ends_when_the_server_closes() {
    let mut s = start(FrontDoor::loopback_only(), 4).await;
    let mut frames = open(&s, "").await;
    assert_eq!(frames.next().await.unwrap().0, "snapshot");
    let _ = s.stop.take().unwrap().send(());
    assert!(frames.next().await.is_none(), "the stream ended, not held open");
}

#[tokio::test]
async fn a_backlog_beyond_the_limit_is_a_400_naming_it() {
    let s = start(FrontDoor::loopback_only(), 4).await;
    let r = client()
        .get(format!("{}/v2/events/stream?backlog=5000", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("`backlog`"));
}

#[tokio::test]
async fn a_source_without_a_live_feed_still_streams_snapshots() {
    let (publish, rx) = watch::channel(Arc::new(Snapshot::default()));
    let state = AppState::new(rx, Arc::new(NoEvents), Arc::new(NoLogs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(llorch_api::serve(listener, state, std::future::pending()));
    let response = client().get(format!("{url}/v2/events/stream")).send().await.unwrap();
    let mut frames = Frames {
        response,
        buffer: String::new(),
    };
    assert_eq!(frames.next().await.unwrap().0, "snapshot");
    publish.send_replace(Arc::new(Snapshot {
        synced: true,
        ..Snapshot::default()
    }));
    let (name, data) = frames.next().await.unwrap();
    assert_eq!((name.as_str(), data["synced"].as_bool()), ("snapshot", Some(true)));
}

#[tokio::test]
async fn the_page_needs_no_token_but_its_data_does_and_both_pass_the_screen() {
    let s = start(secured(), 4).await;
    let http = client();
    let page = http.get(format!("{}/ui", s.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-cache");
    assert!(page.text().await.unwrap().contains("/ui/app.js"));

    let js = http.get(format!("{}/ui/app.js", s.url)).send().await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    let etag = js.headers()["etag"].clone();
    let again = http
        .get(format!("{}/ui/app.js", s.url))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304, "an unchanged file is not sent again");
    let missing = http.get(format!("{}/ui/secret.txt", s.url)).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // The data the page shows needs the token.
    let bare = http.get(format!("{}/v2/events/stream", s.url)).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    let with = http
        .get(format!("{}/v2/events/stream", s.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);

    // The page is screened like every route: a rebinding name or another site is refused.
    let rebound = http
        .get(format!("{}/ui", s.url))
        .header("host", "evil.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let cross = http
        .get(format!("{}/ui/app.js", s.url))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
}

#[tokio::test]
async fn a_path_through_ui_does_not_reach_data_without_the_token() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start(secured(), 4).await;
    let addr = s.url.trim_start_matches("http://");
    for path in ["/ui/../v2/snapshot", "/ui/%2e%2e/v2/snapshot", "/ui//v2/snapshot"] {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
        assert!(!answer.contains("\"synced\""), "{path}: {answer}");
    }
}
