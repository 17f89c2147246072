//! The engine stream harness of `crate::fuzzing`: here because the stream driver and the
//! flavours' parsers are private to the engine module. Not an API.
#![allow(clippy::panic)]

use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::Stream;

use super::llamacpp::NativeParser;
use super::openai::OpenAiParser;
use super::sse::{EventKind, SseDecoder};
use super::stream::{Body, ChunkParser, EngineStream};
use super::transport::TransportError;
use super::{EngineError, EngineEvent};

/// The engine stream target. Byte 0: bit 0 picks the flavour (llama-server native or
/// OpenAI), bit 1 ends the body with a broken connection instead of a clean end; bytes 1–2
/// seed the chunk sizes (0: one chunk); the rest is the engine's response body.
///
/// Properties: the SSE decoder gives the same events however the body is split; the engine
/// stream gives the same items however it is split, never an empty token, and exactly one
/// final item (`Done` or an error) last.
pub fn engine_sse(data: &[u8]) {
    let [mode, s0, s1, body @ ..] = data else { return };
    let chunks = split(body, u16::from_le_bytes([*s0, *s1]));
    assert_eq!(decode(&chunks), decode(&[body]), "the split changed the events");
    let broken = mode & 2 != 0;
    let whole = items(*mode, &[body], broken);
    let split = items(*mode, &chunks, broken);
    assert_eq!(split, whole, "the split changed the stream");
    let last = whole.len().saturating_sub(1);
    for (i, item) in whole.iter().enumerate() {
        let terminal = !item.starts_with("Ok(Token(");
        assert_eq!(terminal, i == last, "items {whole:?}");
        assert_ne!(item, "Ok(Token(\"\"))", "an empty token");
    }
}

/// `body` cut into pieces of 1–32 bytes drawn from `seed` (xorshift); one piece for 0.
fn split(body: &[u8], seed: u16) -> Vec<&[u8]> {
    if seed == 0 {
        return vec![body];
    }
    let mut state = u32::from(seed) | 1 << 16;
    let mut rest = body;
    let mut out = Vec::new();
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let (piece, tail) = rest.split_at((1 + state as usize % 32).min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

/// Every event of `chunks`, draining after each push, then at the end.
pub(crate) fn decode(chunks: &[&[u8]]) -> Vec<(EventKind, Vec<u8>)> {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    let mut drain = |decoder: &mut SseDecoder| {
        while let Ok(Some(event)) = decoder.next_event() {
            events.push((event.kind, event.data.to_vec()));
        }
    };
    for chunk in chunks {
        if decoder.push(chunk).is_err() {
            return events;
        }
        drain(&mut decoder);
    }
    decoder.end();
    drain(&mut decoder);
    events
}

/// The items of an engine stream over `chunks`, as their `Debug` text.
fn items(mode: u8, chunks: &[&[u8]], broken: bool) -> Vec<String> {
    let mut body: Vec<Result<Bytes, TransportError>> = chunks.iter().map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    if broken {
        body.push(Err(TransportError::ClosedEarly));
    }
    let body: Body = Box::pin(futures_util::stream::iter(body));
    if mode & 1 == 0 {
        collect(EngineStream::new(body, NativeParser::default()))
    } else {
        collect(EngineStream::new(body, OpenAiParser::default()))
    }
}

fn collect<P: ChunkParser>(mut stream: EngineStream<P>) -> Vec<String> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        match std::pin::Pin::new(&mut stream).poll_next(&mut cx) {
            Poll::Ready(Some(item)) => out.push(show(item)),
            Poll::Ready(None) => return out,
            Poll::Pending => panic!("an engine stream over a ready body is pending"),
        }
    }
}

fn show(item: Result<EngineEvent, EngineError>) -> String {
    match item {
        Ok(event) => format!("Ok({event:?})"),
        Err(e) => format!("Err({e:?}: {e})"),
    }
}
