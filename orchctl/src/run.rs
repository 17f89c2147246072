//! `orchctl run <pool> "prompt"`: submits a task pinned to the pool, shows its place in the
//! queue on stderr while it waits (refreshed by the stream's `metrics` frames), streams tokens
//! to stdout as they arrive, and ends with a newline on stdout and a one-line summary on
//! stderr.
//!
//! Exit codes: 0 `end`; 1 a failure of orchctl or the daemon; 3 refused by backpressure
//! (HTTP 429: the message and the retry advice are printed); 4 an `error` event; 130
//! interrupted (Ctrl-C): the task is canceled first, so no slot keeps working for nobody.

use std::future::Future;

use anyhow::Context as _;
use llorch_manifests::task::{ChatMessage, End, Metrics, Started, TaskError, TaskPhase, TaskRequest, Token};

use crate::Io;
use crate::cli::RunArgs;
use crate::client::Client;
use crate::context::Context;
use crate::status_line::{StatusLine, ms};
use crate::task_api::{Refused, Submitted};

/// Exit status: refused with HTTP 429.
pub const EXIT_BACKPRESSURE: u8 = 3;
/// Exit status: the stream ended with `error`.
pub const EXIT_TASK_ERROR: u8 = 4;
/// Exit status: interrupted.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The request `args` describe, with `prompt` already read.
pub fn request(args: &RunArgs, prompt: String) -> TaskRequest {
    let (prompt, messages) = if args.chat {
        let message = ChatMessage {
            role: "user".into(),
            content: prompt,
        };
        (None, Some(vec![message]))
    } else {
        (Some(prompt), None)
    };
    TaskRequest {
        pool: Some(args.pool.clone()),
        prompt,
        messages,
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        seed: args.seed,
        priority: args.priority.into(),
        session_id: args.session.clone(),
        ..TaskRequest::default()
    }
}

fn read_prompt(args: &RunArgs, io: &mut Io<'_>) -> anyhow::Result<String> {
    if args.prompt != "-" {
        return Ok(args.prompt.clone());
    }
    let mut text = String::new();
    io.input
        .read_to_string(&mut text)
        .context("cannot read the prompt from stdin")?;
    Ok(text)
}

/// Retry advice for an error: when, and whether at all.
pub fn advice(error: &TaskError, retry_after_s: Option<u64>) -> String {
    if !error.retriable {
        return "hint: not retriable as is; change the request (see the message above)".into();
    }
    let when = match (error.retry_after_ms, retry_after_s) {
        (Some(0), _) => "at once".to_string(),
        (Some(wait), _) => format!("in {}", ms(wait)),
        (None, Some(s)) => format!("in {s} s"),
        (None, None) => "later".to_string(),
    };
    let policy = error
        .policy_label
        .as_deref()
        .map(|p| format!(" (queue policy {p})"))
        .unwrap_or_default();
    format!("hint: retriable; try again {when}{policy}")
}

fn print_refusal(io: &mut Io<'_>, r: &Refused) -> anyhow::Result<()> {
    writeln!(
        io.err,
        "error: {} (HTTP {}): {}",
        r.error.code.as_str(),
        r.status,
        r.error.message
    )?;
    let headers = match (r.retry_after_s, r.backoff_ms) {
        (Some(s), Some(b)) => format!(" [Retry-After: {s} s, X-Backoff-Ms: {b}]"),
        (Some(s), None) => format!(" [Retry-After: {s} s]"),
        _ => String::new(),
    };
    writeln!(io.err, "{}{headers}", advice(&r.error, r.retry_after_s))?;
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(name: &str, data: &str) -> anyhow::Result<T> {
    serde_json::from_str(data).with_context(|| format!("llama-orchd sent an unreadable `{name}` event: {data}"))
}

/// `orchctl run`. `interrupt` resolves on Ctrl-C.
pub async fn run(
    ctx: &Context,
    args: &RunArgs,
    io: &mut Io<'_>,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<u8> {
    let client = ctx.client()?;
    let req = request(args, read_prompt(args, io)?);
    let mut interrupt = std::pin::pin!(interrupt);
    let submitted = tokio::select! {
        _ = &mut interrupt => {
            writeln!(io.err, "interrupted before the task was admitted")?;
            return Ok(EXIT_INTERRUPTED);
        }
        s = client.submit_task(&req) => s?,
    };
    let admitted = match submitted {
        Submitted::Admitted(a) => a,
        Submitted::Refused(r) => {
            print_refusal(io, &r)?;
            return Ok(if r.status == 429 { EXIT_BACKPRESSURE } else { 1 });
        }
    };
    let id = admitted.task_id.clone();
    let mut run = Streaming {
        client: &client,
        id: &id,
        status: StatusLine::new(io.err_tty),
        tokens: 0,
    };
    run.status
        .queued(io, &admitted.pool, admitted.queue_position, admitted.predicted_start_ms)?;
    let result = tokio::select! {
        biased;
        _ = &mut interrupt => None,
        r = run.stream(io, &admitted.pool) => Some(r),
    };
    match result {
        Some(r) => r,
        None => run.cancel(io).await,
    }
}

/// One task being streamed.
struct Streaming<'a> {
    client: &'a Client,
    id: &'a str,
    status: StatusLine,
    tokens: u32,
}

impl Streaming<'_> {
    async fn stream(&mut self, io: &mut Io<'_>, pool: &str) -> anyhow::Result<u8> {
        let mut events = self.client.task_events(self.id).await?;
        while let Some(ev) = events.next().await? {
            match ev.event.as_str() {
                "started" => {
                    let s: Started = parse("started", &ev.data)?;
                    if self.tokens == 0 {
                        self.status.queued(io, pool, s.queue_position, s.predicted_start_ms)?;
                    }
                }
                "metrics" => {
                    let m: Metrics = parse("metrics", &ev.data)?;
                    if let (Some(position), Some(predicted), 0) = (m.queue_position, m.predicted_start_ms, self.tokens)
                    {
                        self.status.queued(io, pool, position, predicted)?;
                    }
                    if !m.kv_warmth {
                        self.status.note(
                            io,
                            "note: the session moved to another replica; its KV cache is cold there",
                        )?;
                    }
                }
                "token" => {
                    let t: Token = parse("token", &ev.data)?;
                    if self.tokens == 0 {
                        self.status.clear(io)?;
                    }
                    io.out.write_all(t.t.as_bytes())?;
                    io.out.flush()?;
                    self.tokens += 1;
                }
                "end" => {
                    let end: End = parse("end", &ev.data)?;
                    self.status.clear(io)?;
                    writeln!(io.out)?;
                    io.out.flush()?;
                    writeln!(io.err, "{}", summary(self.id, &end))?;
                    return Ok(0);
                }
                "error" => {
                    let e: TaskError = parse("error", &ev.data)?;
                    self.status.clear(io)?;
                    if self.tokens > 0 {
                        writeln!(io.out)?;
                        io.out.flush()?;
                    }
                    let engine = e
                        .engine
                        .as_deref()
                        .map(|e| format!(" [engine {e}]"))
                        .unwrap_or_default();
                    writeln!(
                        io.err,
                        "error: {}: {} (task {}, after {} tokens){engine}",
                        e.code.as_str(),
                        e.message,
                        self.id,
                        self.tokens
                    )?;
                    writeln!(io.err, "{}", advice(&e, None))?;
                    return Ok(EXIT_TASK_ERROR);
                }
                _ => {}
            }
        }
        self.ended_early(io).await
    }

    /// The daemon closed the stream without `end` or `error`: canceled elsewhere, or gone.
    async fn ended_early(&mut self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        self.status.clear(io)?;
        if self.tokens > 0 {
            writeln!(io.out)?;
        }
        let state = match self.client.task(self.id).await {
            Ok(row) => row.state.as_str().to_string(),
            Err(e) => format!("unknown: {e}"),
        };
        if state == TaskPhase::Canceled.as_str() {
            writeln!(
                io.err,
                "task {} was canceled (by `orchctl cancel` or another client) after {} tokens",
                self.id, self.tokens
            )?;
        } else {
            writeln!(
                io.err,
                "error: task {}'s stream ended without `end` or `error` (state: {state})",
                self.id
            )?;
        }
        Ok(1)
    }

    /// Ctrl-C: cancel the task, say what reached the terminal, exit 130.
    async fn cancel(&mut self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        self.status.clear(io)?;
        if self.tokens > 0 {
            writeln!(io.out)?;
            io.out.flush()?;
        }
        match self.client.cancel_task(self.id).await {
            Ok(ack) if ack.state == TaskPhase::Canceled => writeln!(
                io.err,
                "interrupted: task {} canceled after {} tokens",
                self.id, ack.tokens_streamed
            )?,
            Ok(ack) => writeln!(
                io.err,
                "interrupted: task {} had already ended ({}) after {} tokens",
                self.id,
                ack.state.as_str(),
                ack.tokens_streamed
            )?,
            Err(e) => writeln!(
                io.err,
                "interrupted; task {} may still run: {e}; cancel it with `orchctl cancel {}`",
                self.id, self.id
            )?,
        }
        Ok(EXIT_INTERRUPTED)
    }
}

/// `done: 16 tokens, decode 812 ms (19.7 tokens/s), finish length, prompt 9 tokens, task task-…`.
pub fn summary(id: &str, end: &End) -> String {
    let rate = if end.decode_time_ms > 0 {
        format!(
            " ({:.1} tokens/s)",
            f64::from(end.tokens_out) * 1000.0 / end.decode_time_ms as f64
        )
    } else {
        String::new()
    };
    format!(
        "done: {} tokens, decode {} ms{rate}, finish {}, prompt {} tokens, task {id}",
        end.tokens_out,
        end.decode_time_ms,
        end.finish_reason.as_str(),
        end.tokens_in
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::PriorityArg;
    use llorch_manifests::task::{ErrorCode, Priority};

    fn args(chat: bool) -> RunArgs {
        RunArgs {
            pool: "chat".into(),
            prompt: "hi".into(),
            max_tokens: 8,
            seed: Some(3),
            temperature: None,
            priority: PriorityArg::Batch,
            session: None,
            chat,
        }
    }

    #[test]
    fn the_request_pins_the_pool_and_chat_sends_one_user_message() {
        let plain = request(&args(false), "hi".into());
        assert_eq!(
            (plain.pool.as_deref(), plain.prompt.as_deref(), plain.messages.is_none()),
            (Some("chat"), Some("hi"), true)
        );
        assert_eq!(
            (plain.max_tokens, plain.seed, plain.priority),
            (8, Some(3), Priority::Batch)
        );
        let chat = request(&args(true), "hi".into());
        assert!(chat.prompt.is_none());
        let messages = chat.messages.unwrap();
        assert_eq!(
            (messages[0].role.as_str(), messages[0].content.as_str()),
            ("user", "hi")
        );
    }

    #[test]
    fn advice_says_when_to_retry_or_that_retrying_will_not_help() {
        let mut e = TaskError {
            code: ErrorCode::AdmissionReject,
            message: "full".into(),
            retriable: true,
            retry_after_ms: Some(1800),
            policy_label: Some("reject".into()),
            engine: None,
        };
        assert_eq!(
            advice(&e, Some(2)),
            "hint: retriable; try again in 1.8 s (queue policy reject)"
        );
        e.retry_after_ms = None;
        e.policy_label = None;
        assert_eq!(advice(&e, Some(2)), "hint: retriable; try again in 2 s");
        e.retriable = false;
        assert!(advice(&e, None).starts_with("hint: not retriable"));
    }

    #[test]
    fn the_summary_gives_tokens_decode_time_and_rate() {
        let end = End {
            tokens_out: 16,
            decode_time_ms: 800,
            finish_reason: llorch_manifests::task::FinishReason::Length,
            tokens_in: 9,
        };
        assert_eq!(
            summary("task-1", &end),
            "done: 16 tokens, decode 800 ms (20.0 tokens/s), finish length, prompt 9 tokens, task task-1"
        );
    }
}
