//! Data-plane wire types (requirements §4): a task request, what admission answers, the SSE
//! event payloads and the error taxonomy shared by HTTP bodies, SSE `error` events and metrics.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the data-plane API, reported by capabilities discovery.
pub const DATA_API_VERSION: &str = "2.0.0";

/// Task priority: `interactive` is served before `batch` (with a guard against starving batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// A person or agent is waiting.
    #[default]
    Interactive,
    /// Background work.
    Batch,
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// `POST /v2/tasks` body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// Pin the task to this Pool; never silently placed elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Or: any Pool serving this Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A plain prompt (exactly one of `prompt` and `messages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Chat messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<ChatMessage>>,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Seed; the same request with the same seed on the same replica gives the same tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Stop strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// `interactive` (default) or `batch`.
    #[serde(default)]
    pub priority: Priority,
    /// Keeps a conversation on one replica (KV-cache warmth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `false`: leave no job record of this task (a sensitive prompt). Default: recorded
    /// when the daemon and the Pool record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
}

/// `202 Accepted` body of `POST /v2/tasks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskAdmitted {
    /// The task's id.
    pub task_id: String,
    /// The Pool it was queued on.
    pub pool: String,
    /// 0-based position in the queue at admission.
    pub queue_position: u32,
    /// Estimated milliseconds until it starts.
    pub predicted_start_ms: u64,
    /// Where to read its SSE stream.
    pub events_url: String,
}

/// Stable error codes (OC-CTRL-2030): every error the API returns carries one, in its JSON
/// body, its SSE `error` event and the metrics that count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The queue is full and the policy is `reject`.
    AdmissionReject,
    /// The task was dropped from a full queue (policy `drop-lru`).
    QueueFullDropLru,
    /// The request is malformed or exceeds a limit.
    InvalidParams,
    /// The Pool exists but has no Ready replica.
    PoolUnready,
    /// No such Pool, or none serves the Model.
    PoolUnavailable,
    /// No replica slot could take the task.
    ReplicaExhausted,
    /// The engine stalled past a watchdog.
    DecodeTimeout,
    /// The engine connection was lost mid-stream.
    WorkerReset,
    /// A bug or an unexpected failure.
    Internal,
    /// The Pool is being drained: it admits no new task, and a running one was stopped at the
    /// drain's deadline.
    PoolDraining,
    /// The daemon is shutting down and admits no new task.
    ShuttingDown,
    /// The named object, replica, task or route does not exist.
    NotFound,
    /// The controller has not finished its first scan, or a part of the server is missing.
    NotReady,
    /// An engine's logs could not be read.
    LogsUnavailable,
    /// The route exists, not for this method.
    MethodNotAllowed,
    /// The request conflicts with the current state (a stream already read, a file that
    /// cannot be edited automatically).
    Conflict,
    /// The Model named is not usable.
    ModelUnusable,
    /// The download policy refuses the request.
    PolicyRefused,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// The task was canceled (through `POST /v2/tasks/{id}/cancel`) while a client waited for
    /// its reply.
    Canceled,
    /// No bearer token, or one that is not valid, where the route needs one.
    Unauthorized,
    /// Refused before any handler: a foreign `Origin` or `Host`, or a cross-site fetch.
    Forbidden,
    /// A write request whose body is not declared `application/json`.
    UnsupportedMediaType,
    /// Manifests sent to the write API do not parse or validate, or would break what the
    /// manifests directory holds; the message lists every error with its file and field.
    InvalidManifest,
}

impl ErrorCode {
    /// The code as it appears on the wire and in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AdmissionReject => "ADMISSION_REJECT",
            ErrorCode::QueueFullDropLru => "QUEUE_FULL_DROP_LRU",
            ErrorCode::InvalidParams => "INVALID_PARAMS",
            ErrorCode::PoolUnready => "POOL_UNREADY",
            ErrorCode::PoolUnavailable => "POOL_UNAVAILABLE",
            ErrorCode::ReplicaExhausted => "REPLICA_EXHAUSTED",
            ErrorCode::DecodeTimeout => "DECODE_TIMEOUT",
            ErrorCode::WorkerReset => "WORKER_RESET",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::PoolDraining => "POOL_DRAINING",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::NotReady => "NOT_READY",
            ErrorCode::LogsUnavailable => "LOGS_UNAVAILABLE",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::ModelUnusable => "MODEL_UNUSABLE",
            ErrorCode::PolicyRefused => "POLICY_REFUSED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::Canceled => "CANCELED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::InvalidManifest => "INVALID_MANIFEST",
        }
    }

    /// The HTTP status an error with this code answers with, unless the error sets its own
    /// (the one table of it).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::AdmissionReject | ErrorCode::QueueFullDropLru => 429,
            ErrorCode::InvalidParams => 400,
            ErrorCode::PoolUnavailable | ErrorCode::NotFound => 404,
            ErrorCode::PoolUnready
            | ErrorCode::ReplicaExhausted
            | ErrorCode::PoolDraining
            | ErrorCode::ShuttingDown
            | ErrorCode::NotReady => 503,
            ErrorCode::DecodeTimeout => 504,
            ErrorCode::WorkerReset | ErrorCode::LogsUnavailable => 502,
            ErrorCode::Internal => 500,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict | ErrorCode::Canceled => 409,
            ErrorCode::ModelUnusable | ErrorCode::InvalidManifest => 422,
            ErrorCode::PolicyRefused | ErrorCode::Forbidden => 403,
            ErrorCode::Unauthorized => 401,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::PayloadTooLarge => 413,
        }
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The JSON body of every API error (control plane and data plane), and the payload of the
/// SSE `error` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskError {
    /// Stable code.
    pub code: ErrorCode,
    /// What happened and what to do.
    pub message: String,
    /// Whether retrying the same request may succeed.
    #[serde(default)]
    pub retriable: bool,
    /// When to retry, from measured service times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The backpressure policy that refused the task (`reject`, `drop-lru`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_label: Option<String>,
    /// The engine involved, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// SSE `started`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Started {
    /// Position in the queue when the stream was opened (0 when it starts at once).
    pub queue_position: u32,
    /// Estimated milliseconds until the first token.
    pub predicted_start_ms: u64,
}

/// SSE `token`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Token {
    /// The token text.
    pub t: String,
    /// Its 0-based index.
    pub i: u32,
}

/// SSE `metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metrics {
    /// Tasks waiting in the pool's queue.
    pub queue_depth: u32,
    /// This task's position, while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u32>,
    /// Refreshed estimate, while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_start_ms: Option<u64>,
    /// Probability the task starts within its estimate.
    pub on_time_probability: f64,
    /// False when a session moved to another replica (its KV cache is cold there).
    pub kv_warmth: bool,
    /// Tokens the task's session may still generate, when the Pool sets a budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens_remaining: Option<u64>,
}

/// Why a reply ended, as the engine said (OpenAI's `finish_reason`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended it, or a stop string matched (also on the last allowed token).
    #[default]
    Stop,
    /// It reached `max_tokens` (or the engine's context).
    Length,
    /// The model called one or more tools.
    ToolCalls,
    /// The engine's content filter stopped it.
    ContentFilter,
}

impl FinishReason {
    /// `stop`, `length`, `tool_calls` or `content_filter`, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }

    /// Reads an engine's reason: OpenAI's names, TGI's (`eos_token`, `stop_sequence`) and
    /// llama.cpp's `stop_type` (`limit`, `eos`, `word`); the legacy `function_call` is a tool
    /// call. Anything else is a stop.
    pub fn from_engine(reason: &str) -> Self {
        match reason {
            "length" | "limit" => FinishReason::Length,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            _ => FinishReason::Stop,
        }
    }
}

/// SSE `end`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct End {
    /// Tokens generated.
    pub tokens_out: u32,
    /// Milliseconds from the first token to the last.
    pub decode_time_ms: u64,
    /// Why it ended, as the engine said.
    #[serde(default)]
    pub finish_reason: FinishReason,
    /// Prompt tokens: the engine's own count when it reported one, else the count admission
    /// used.
    #[serde(default)]
    pub tokens_in: u32,
}

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskPhase {
    /// Waiting in the pool's queue.
    Queued,
    /// Streaming from a replica.
    Running,
    /// Ended with `end`.
    Done,
    /// Ended with `error`.
    Failed,
    /// Canceled by the client (explicitly or by disconnecting).
    Canceled,
}

impl TaskPhase {
    /// True once nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(self, TaskPhase::Done | TaskPhase::Failed | TaskPhase::Canceled)
    }

    /// `queued`, `running`, … as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskPhase::Queued => "queued",
            TaskPhase::Running => "running",
            TaskPhase::Done => "done",
            TaskPhase::Failed => "failed",
            TaskPhase::Canceled => "canceled",
        }
    }
}

/// `GET /v2/tasks/{id}` body, and one entry of `GET /v2/tasks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskSummary {
    /// Id.
    pub task_id: String,
    /// Pool.
    pub pool: String,
    /// Phase.
    pub state: TaskPhase,
    /// Replica, once dispatched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<crate::ReplicaId>,
    /// Tokens streamed so far.
    pub tokens_out: u32,
    /// Priority.
    pub priority: Priority,
    /// Session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Milliseconds since admission.
    pub age_ms: u64,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
    /// The `X-Correlation-Id` it was submitted with; its logs carry it.
    #[serde(default)]
    pub correlation_id: String,
}

/// `POST /v2/tasks/{id}/cancel`'s answer: once it arrives, the task's stream carries no more
/// tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CancelAck {
    /// The task.
    pub task_id: String,
    /// Its phase after the cancel: `canceled`, or how it had already ended.
    pub state: TaskPhase,
    /// Its phase before: `queued` or `running` when this cancel stopped it.
    pub previous_state: TaskPhase,
    /// Tokens its stream carried; none follows the acknowledgement.
    pub tokens_streamed: u32,
}
