#![allow(clippy::unwrap_used)]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};

use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// Counts the wakes its task gets, and lets the test wait for the next one.
#[derive(Default)]
struct Counting {
    wakes: AtomicUsize,
    woken: tokio::sync::Notify,
}

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.woken.notify_one();
    }
}

/// An engine that streams `chunks` chunks, one every 20 ms, on one connection.
async fn trickling_engine(chunks: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..chunks {
            tokio::time::sleep(Duration::from_millis(20)).await;
            socket.write_all(b"6\r\ndata:\n\r\n").await.unwrap();
        }
        socket.write_all(b"0\r\n\r\n").await.unwrap();
        let _ = socket.read(&mut buf).await;
    });
    format!("http://{addr}/completion")
}

#[tokio::test]
async fn reading_a_body_wakes_its_task_once_per_chunk_that_arrives() {
    const CHUNKS: usize = 10;
    let url = trickling_engine(CHUNKS).await;
    let transport = Transport::new(ClientOptions::default());
    let mut body = transport.post_json(&url, Bytes::from_static(b"{}")).await.unwrap().body;
    let task = Arc::new(Counting::default());
    let waker = Waker::from(task.clone());
    let mut cx = Context::from_waker(&waker);
    let mut chunks = 0;
    loop {
        match Pin::new(&mut body).poll_next(&mut cx) {
            Poll::Ready(Some(chunk)) => {
                chunk.unwrap();
                chunks += 1;
            }
            Poll::Ready(None) => break,
            Poll::Pending => task.woken.notified().await,
        }
    }
    assert_eq!(chunks, CHUNKS);
    // One wake per chunk from the socket, and one for the last chunk's end; before
    // `OwnWaker`, hyper's hand-over of each chunk to the body woke the task a second time.
    let wakes = task.wakes.load(Ordering::SeqCst);
    assert!(wakes <= CHUNKS + 1, "{wakes} wakes for {CHUNKS} chunks");
}
