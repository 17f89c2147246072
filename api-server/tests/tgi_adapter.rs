//! The TGI adapter on a real socket against a scripted text-generation-inference: the path
//! and body it sends for a raw prompt and for chat, the tokens and the final count of a
//! `/generate_stream` reply, and an error event inside the stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::StreamExt;
use llorch_api::engine::{EngineClients, EngineError, EngineEvent, Finish, GenerateRequest};
use llorch_manifests::ApiFlavour;
use llorch_manifests::task::ChatMessage;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// One request as the scripted engine received it.
#[derive(Debug)]
struct Seen {
    path: String,
    body: Value,
}

/// Serves one request with `events` as an event stream; returns the base URL and what it saw.
async fn scripted(events: &'static str) -> (String, oneshot::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let (head_end, length) = loop {
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .map_or(0, |v| v.parse::<usize>().unwrap());
                break (end + 4, length);
            }
        };
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let path = head.split_whitespace().nth(1).unwrap().to_owned();
        let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap();
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{events}",
            events.len()
        );
        socket.write_all(reply.as_bytes()).await.unwrap();
        tx.send(Seen { path, body }).unwrap();
        // Keep the connection open, as TGI does (keep-alive), until the client lets it go.
        let _ = socket.read(&mut [0u8; 1]).await;
    });
    (base, rx)
}

async fn run(base: &str, req: &GenerateRequest) -> Vec<Result<EngineEvent, EngineError>> {
    let clients = EngineClients::new();
    let stream = clients.for_api(ApiFlavour::Tgi).generate(base, req).await.unwrap();
    stream.collect().await
}

const GENERATE_STREAM: &str = concat!(
    "data:{\"index\":1,\"token\":{\"id\":12,\"text\":\" upon\",\"logprob\":-0.2,\"special\":false},\"generated_text\":null,\"details\":null}\n\n",
    "data:{\"index\":2,\"token\":{\"id\":13,\"text\":\" a\",\"logprob\":-0.1,\"special\":false},\"generated_text\":null,\"details\":null}\n\n",
    "data:{\"index\":3,\"token\":{\"id\":2,\"text\":\"</s>\",\"logprob\":0.0,\"special\":true},\"generated_text\":\" upon a\",",
    "\"details\":{\"finish_reason\":\"eos_token\",\"generated_tokens\":3,\"seed\":null,\"input_length\":2}}\n\n",
);

#[tokio::test]
async fn a_raw_prompt_streams_from_generate_stream_and_ends_with_tgis_count() {
    let (base, seen) = scripted(GENERATE_STREAM).await;
    let mut req = GenerateRequest::text("Once", 16);
    req.temperature = Some(0.0);
    let items: Vec<EngineEvent> = run(&base, &req).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        items,
        vec![
            EngineEvent::Token(" upon".into()),
            EngineEvent::Token(" a".into()),
            EngineEvent::Done {
                tokens_out: 3,
                finish: Finish::Stop,
                tokens_in: Some(2),
            },
        ]
    );
    let seen = seen.await.unwrap();
    assert_eq!(seen.path, "/generate_stream");
    assert_eq!(
        seen.body,
        json!({"inputs": "Once", "parameters": {"max_new_tokens": 16, "do_sample": false, "details": true}})
    );
}

#[tokio::test]
async fn chat_goes_to_the_messages_api_without_a_top_p_tgi_would_refuse() {
    let events = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":{\"completion_tokens\":1,\"prompt_tokens\":3}}\n\n",
        "data: [DONE]\n\n",
    );
    let (base, seen) = scripted(events).await;
    let hello = ChatMessage {
        role: "user".into(),
        content: "Hello".into(),
    };
    let mut req = GenerateRequest::chat(vec![hello], 1);
    req.top_p = Some(1.0);
    let items = run(&base, &req).await;
    assert!(
        matches!(
            items.last(),
            Some(Ok(EngineEvent::Done {
                tokens_out: 1,
                finish: Finish::Length,
                tokens_in: Some(3),
            }))
        ),
        "{items:?}"
    );
    let seen = seen.await.unwrap();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.body["messages"][0]["content"], "Hello");
    assert!(seen.body.get("top_p").is_none(), "{}", seen.body);
    assert!(seen.body.get("cache_prompt").is_none(), "{}", seen.body);
}

#[tokio::test]
async fn an_error_event_mid_stream_is_a_rejection_with_tgis_status() {
    let events = concat!(
        "data:{\"index\":1,\"token\":{\"id\":12,\"text\":\" upon\",\"logprob\":-0.2,\"special\":false},\"generated_text\":null,\"details\":null}\n\n",
        "data:{\"error\":\"Request failed during generation: Server error: CUDA out of memory\",\"error_type\":\"generation\"}\n\n",
    );
    let (base, _seen) = scripted(events).await;
    let items = run(&base, &GenerateRequest::text("Once", 16)).await;
    assert_eq!(items.len(), 2, "{items:?}");
    match &items[1] {
        Err(EngineError::Rejected { status: 500, message }) => {
            assert!(message.contains("CUDA out of memory"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}
