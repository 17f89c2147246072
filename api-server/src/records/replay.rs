//! Replay: a job record's request re-submitted to the same Pool through the data plane, only
//! when the Pool still serves the record's engine version and model digest (else the verdict
//! is `notReproducible`, with what changed, and nothing runs). The new task's stream is
//! rendered like the record's and its deterministic part — token texts in order and how it
//! ended — compared with the record's.

use std::sync::Arc;

use llorch_manifests::api::Snapshot;
use llorch_manifests::records::{Change, ChangeKind, JobRecord, OpenAiSurface, ReplayReport, Transcript, Verdict};
use llorch_manifests::task::TaskRequest;

use super::transcript;
use crate::engine::fields::{ClientFields, Surface};
use crate::error::ApiError;
use crate::front_door::Identity;
use crate::tasks::DataPlane;
use crate::tasks::native_frames;
use crate::tasks::stream::{Next, TaskStream};

/// What differs between the record and what `snapshot` serves under its Pool now.
pub fn changes(snapshot: &Snapshot, record: &JobRecord) -> Vec<Change> {
    let serving = snapshot.serving.iter().find(|p| p.pool == record.pool);
    let Some(contract) = serving.and_then(|p| p.contract.as_ref()) else {
        return vec![Change {
            what: ChangeKind::Pool,
            recorded: record.pool.clone(),
            now: "none".into(),
        }];
    };
    let mut changed = Vec::new();
    if contract.engine_version != record.engine.version {
        changed.push(Change {
            what: ChangeKind::EngineVersion,
            recorded: record.engine.version.clone(),
            now: contract.engine_version.clone(),
        });
    }
    if contract.model_digest != record.model.digest {
        let show = |d: &Option<String>| d.clone().unwrap_or_else(|| "none".into());
        changed.push(Change {
            what: ChangeKind::ModelDigest,
            recorded: show(&record.model.digest),
            now: show(&contract.model_digest),
        });
    }
    changed
}

/// The record's request as a task for its Pool, with the `/v1` fields it relayed.
fn request_of(record: &JobRecord) -> (TaskRequest, Option<ClientFields>) {
    let r = &record.request;
    let task = TaskRequest {
        pool: Some(record.pool.clone()),
        prompt: r.prompt.clone(),
        messages: r.messages.clone(),
        max_tokens: r.max_tokens,
        temperature: r.temperature,
        top_p: r.top_p,
        seed: r.seed,
        stop: r.stop.clone(),
        priority: r.priority,
        ..TaskRequest::default()
    };
    let fields = r.openai.as_ref().map(|o| ClientFields {
        surface: match o.surface {
            OpenAiSurface::Chat => Surface::Chat,
            OpenAiSurface::Completions => Surface::Completions,
        },
        fields: Arc::new(o.fields.clone()),
    });
    (task, fields)
}

/// Replays `record` as `identity` (when `snapshot` still serves what it ran on) and compares.
pub async fn replay(
    dp: &Arc<DataPlane>,
    snapshot: &Snapshot,
    record: &JobRecord,
    identity: Identity,
) -> Result<ReplayReport, ApiError> {
    let changed = changes(snapshot, record);
    if !changed.is_empty() {
        return Ok(ReplayReport {
            verdict: Verdict::NotReproducible,
            replay_task_id: None,
            first_difference: None,
            changed,
        });
    }
    let (task, fields) = request_of(record);
    let admitted = dp
        .submit_relaying(
            task,
            fields,
            None,
            identity,
            crate::trace_context::RemoteParent::default(),
        )
        .await?;
    let task = dp
        .task(&admitted.task_id)
        .ok_or_else(|| ApiError::internal("the replay's task vanished"))?;
    let mut stream = TaskStream::open(dp.clone(), task)?;
    let mut bytes = Vec::new();
    let mut batch = Vec::new();
    // Until the end, a cancel or a closed channel.
    while let Next::Events = stream.next_batch(&mut batch).await {
        for ev in batch.drain(..) {
            native_frames::render(&ev, &mut bytes);
        }
        if stream.ended() {
            break;
        }
    }
    let replayed = Transcript::from_sse(bytes);
    Ok(compare(record, &replayed, admitted.task_id))
}

/// The verdict of `replayed` against `record`'s transcript.
pub fn compare(record: &JobRecord, replayed: &Transcript, replay_task_id: String) -> ReplayReport {
    let difference = transcript::first_difference(
        &transcript::deterministic(&record.transcript),
        &transcript::deterministic(replayed),
    );
    ReplayReport {
        verdict: if difference.is_some() {
            Verdict::Different
        } else {
            Verdict::Identical
        },
        replay_task_id: Some(replay_task_id),
        first_difference: difference,
        changed: Vec::new(),
    }
}
