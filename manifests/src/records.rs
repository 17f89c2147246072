//! Wire types of job records, plans and diffs — the content-addressed artifacts behind
//! `/v2/artifacts` — and of a replay's verdict. Shared by the API server (which stores and
//! serves them), orchctl (which lists, prints and replays them) and the status page.
//!
//! An artifact is stored as the compact JSON of [`Artifact`]; its id is `sha256:<hex>` of
//! those bytes. Pure types: storing them is the API server's business.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::ApiFlavour;
use crate::task::{ChatMessage, FinishReason, Priority, TaskError, TaskPhase};
pub use crate::transcript::{EventRef, Transcript, TranscriptEvent};

/// Largest artifact stored, in bytes of its JSON (a job record with a long transcript fits
/// many times over; `POST /v2/artifacts` bodies are held to the API's 1 MiB body limit first).
pub const MAX_ARTIFACT_BYTES: usize = 8 * 1024 * 1024;

/// Most entries one `GET /v2/artifacts` answers.
pub const MAX_LIST_LIMIT: usize = 500;

/// The prefix of every artifact id.
pub const ID_PREFIX: &str = "sha256:";

/// What an artifact is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// One finished task's record.
    Job,
    /// A provisioning plan (`orchctl plan`).
    Plan,
    /// The diff a manifest write applied.
    Diff,
}

impl ArtifactKind {
    /// `job`, `plan` or `diff`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Job => "job",
            ArtifactKind::Plan => "plan",
            ArtifactKind::Diff => "diff",
        }
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ArtifactKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "job" => Ok(ArtifactKind::Job),
            "plan" => Ok(ArtifactKind::Plan),
            "diff" => Ok(ArtifactKind::Diff),
            other => Err(format!("`{other}` is not an artifact kind (job, plan or diff)")),
        }
    }
}

/// A stored artifact, as `GET /v2/artifacts/{id}` answers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Artifact {
    /// A finished task's record.
    Job(Box<JobRecord>),
    /// A provisioning plan.
    Plan(Document),
    /// An applied manifest diff.
    Diff(Document),
}

impl Artifact {
    /// Its kind.
    pub fn kind(&self) -> ArtifactKind {
        match self {
            Artifact::Job(_) => ArtifactKind::Job,
            Artifact::Plan(_) => ArtifactKind::Plan,
            Artifact::Diff(_) => ArtifactKind::Diff,
        }
    }
}

/// A plan's or a diff's content, as its writer sent it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Document {
    /// Any JSON.
    pub content: serde_json::Value,
}

/// `POST /v2/artifacts` body: a plan or a diff (job records are written by the daemon only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactPost {
    /// `plan` or `diff`.
    pub kind: ArtifactKind,
    /// Any JSON.
    pub content: serde_json::Value,
}

/// `POST /v2/artifacts` answer: `201` when stored now, `200` when the same content was
/// already stored (the same id either way).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactCreated {
    /// `sha256:<hex>`.
    pub id: String,
}

/// One finished task: what was asked, who asked, what served it, how long it took and the
/// exact stream its client read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// `task-…`.
    pub task_id: String,
    /// The submitting request's `X-Correlation-Id`.
    pub correlation_id: String,
    /// Who submitted it (`localhost`, `token:<name>`, `anonymous`).
    pub identity: String,
    /// The Pool.
    pub pool: String,
    /// The replica it ran on, once placed.
    pub replica: Option<String>,
    /// The Engine as the Pool's contract named it.
    pub engine: RecordedEngine,
    /// The Model as the Pool's contract named it.
    pub model: RecordedModel,
    /// The request, redacted: prompt and sampling kept (replay needs them), no header, token
    /// or secret.
    pub request: RecordedRequest,
    /// `done`, `failed` or `canceled`.
    pub state: TaskPhase,
    /// Why the engine ended the reply, when it did.
    pub finish_reason: Option<FinishReason>,
    /// The error it ended with, when it failed.
    pub error: Option<TaskError>,
    /// Queue, placement and decode figures.
    pub timings: JobTimings,
    /// Prompt tokens (the engine's count when it gave one).
    pub tokens_in: Option<u32>,
    /// Tokens generated.
    pub tokens_out: u32,
    /// Admission time, RFC 3339.
    pub created_at: String,
    /// When it ended, RFC 3339.
    pub finished_at: String,
    /// The task stream exactly as `GET /v2/tasks/{id}/events` wrote it (keep-alives left out).
    pub transcript: Transcript,
}

/// What ran the task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEngine {
    /// The Engine's name.
    pub name: String,
    /// Its version label.
    pub version: String,
    /// The API it speaks.
    pub api: ApiFlavour,
}

/// The weights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedModel {
    /// The Model's name.
    pub name: String,
    /// Its declared digest (`sha256:…`).
    pub digest: Option<String>,
    /// The file the replicas loaded.
    pub file: Option<String>,
}

/// A task's request as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRequest {
    /// A plain prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Or chat messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<ChatMessage>>,
    /// Most tokens.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Seed.
    pub seed: Option<u64>,
    /// Stop strings.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Priority.
    pub priority: Priority,
    /// Session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// For a `/v1` request: the endpoint and the client's own OpenAI fields relayed to the
    /// engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai: Option<RecordedOpenAi>,
}

/// The OpenAI part of a `/v1` request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedOpenAi {
    /// `chat` or `completions`.
    pub surface: OpenAiSurface,
    /// The fields relayed to the engine as written.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// A `/v1` endpoint that streams tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OpenAiSurface {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
}

/// Timing figures, milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobTimings {
    /// Admission to placement.
    pub queue_wait_ms: Option<u64>,
    /// Admission to the first token.
    pub ttft_ms: Option<u64>,
    /// First token to last, as the engine reported.
    pub decode_ms: Option<u64>,
    /// Admission to the end.
    pub total_ms: u64,
}

/// One entry of `GET /v2/artifacts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactEntry {
    /// `sha256:<hex>`.
    pub id: String,
    /// Its kind.
    pub kind: ArtifactKind,
    /// The task, for a job record.
    pub job: Option<String>,
    /// The Pool, for a job record.
    pub pool: Option<String>,
    /// When it was stored (a job: when the task was admitted), RFC 3339.
    pub created_at: String,
    /// Bytes stored.
    pub size_bytes: u64,
    /// A short summary (job records only).
    pub summary: ArtifactSummary,
}

/// What a list shows of a job without reading it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactSummary {
    /// How the task ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskPhase>,
    /// Its Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Tokens generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_out: Option<u32>,
    /// Why the engine ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
}

/// `GET /v2/artifacts` answer: newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactList {
    /// The entries.
    pub items: Vec<ArtifactEntry>,
    /// Pass as `before` for the next page; none after the last.
    pub next: Option<String>,
}

/// `POST /v2/artifacts/{id}/replay` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// The outcome.
    pub verdict: Verdict,
    /// The replay's own task, when one ran.
    pub replay_task_id: Option<String>,
    /// The first token (or the finish reason) that differs, when one does.
    pub first_difference: Option<FirstDifference>,
    /// What changed since the record, when it cannot be reproduced.
    pub changed: Vec<Change>,
}

/// A replay's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Same tokens, same finish reason.
    Identical,
    /// Ran, and differs.
    Different,
    /// Not run: the Pool's engine or model is not what the record ran on.
    NotReproducible,
}

/// Where two transcripts part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FirstDifference {
    /// The token index (the token count for a difference in the end).
    pub index: u32,
    /// What the record holds there (`<end: stop>` past its last token).
    pub recorded: String,
    /// What the replay produced there.
    pub replayed: String,
}

/// One thing that changed since a record was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    /// What.
    pub what: ChangeKind,
    /// As recorded.
    pub recorded: String,
    /// As the Pool serves now (`none` when it does not serve).
    pub now: String,
}

/// What can change between a record and its replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    /// The Pool is gone or has no serving contract.
    Pool,
    /// The Engine's version label.
    EngineVersion,
    /// The Model's digest.
    ModelDigest,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Pool => "pool",
            ChangeKind::EngineVersion => "engineVersion",
            ChangeKind::ModelDigest => "modelDigest",
        })
    }
}

/// A valid artifact id: `sha256:` and 64 lowercase hex characters.
pub fn is_artifact_id(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_carry_their_kind_and_ids_are_strict() {
        let plan = Artifact::Plan(Document {
            content: serde_json::json!({"a": 1}),
        });
        let text = serde_json::to_string(&plan).unwrap_or_default();
        assert_eq!(text, r#"{"kind":"plan","content":{"a":1}}"#);
        assert!(is_artifact_id(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_artifact_id(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_artifact_id("sha256:../x"));
        assert!(!is_artifact_id("../x"));
    }
}
