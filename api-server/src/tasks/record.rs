//! The end of a recorded task: its request (redacted: prompt and sampling kept, nothing of
//! the HTTP request's headers or tokens), identity, what served it, its figures and its
//! transcript bytes, handed to the records writer in one non-blocking send. Called by
//! [`lifecycle`](super::lifecycle) once, when the task ends; a task without a
//! [`RecordSetup`](crate::records::RecordSetup) costs nothing here.

use std::time::SystemTime;

use llorch_manifests::records::{JobRecord, JobTimings, RecordedOpenAi, RecordedRequest};

use super::task::TaskState;
use crate::engine::Prompt;
use crate::records::{FinishedJob, ms_of, now_ms};

impl TaskState {
    /// Hands this task's record to the writer; `tokens_streamed` for a canceled task.
    pub(super) fn record_end(&self, tokens_streamed: Option<u32>) {
        let Some(setup) = &self.meta.record else { return };
        let transcript = self.take_transcript();
        let total_ms = self.created.elapsed().as_millis() as u64;
        let finished_ms = now_ms();
        let created_ms = ms_of(SystemTime::now() - self.created.elapsed());
        let (state, replica, error, tokens_out, f) = {
            let p = self.progress();
            let f = &p.figures;
            let figures = (f.queue_wait_ms, f.ttft_ms, f.decode_ms, f.tokens_in, f.finish);
            (p.phase, p.replica.clone(), p.error.clone(), p.tokens_out, figures)
        };
        let (queue_wait_ms, ttft_ms, decode_ms, tokens_in, finish_reason) = f;
        let g = &self.request.generate;
        let (prompt, messages) = match &g.prompt {
            Prompt::Text(t) => (Some(t.clone()), None),
            Prompt::Chat(m) => (None, Some(m.clone())),
        };
        let openai = setup.openai.map(|surface| RecordedOpenAi {
            surface,
            fields: g.passthrough.as_deref().cloned().unwrap_or_default(),
        });
        let record = JobRecord {
            task_id: self.id.clone(),
            correlation_id: self.meta.correlation_id.clone(),
            identity: self.meta.identity.to_string(),
            pool: self.pool.clone(),
            replica: replica.map(|r| r.as_str().to_string()),
            engine: setup.engine.clone(),
            model: setup.model.clone(),
            request: RecordedRequest {
                prompt,
                messages,
                max_tokens: g.max_tokens,
                temperature: g.temperature,
                top_p: g.top_p,
                seed: g.seed,
                stop: g.stop.clone(),
                priority: self.request.priority,
                session_id: self.request.session_id.clone(),
                openai,
            },
            state,
            finish_reason,
            error,
            timings: JobTimings {
                queue_wait_ms,
                ttft_ms,
                decode_ms,
                total_ms,
            },
            tokens_in,
            tokens_out,
            created_at: crate::records::index::rfc3339(created_ms),
            finished_at: crate::records::index::rfc3339(finished_ms),
            transcript: Default::default(),
        };
        setup.records.submit(FinishedJob {
            record,
            transcript,
            tokens_streamed,
            created_ms,
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::time::Duration;

    use llorch_manifests::records::{RecordedEngine, RecordedModel};
    use llorch_manifests::task::{FinishReason, Priority, Started, TaskPhase, Token};

    use super::*;
    use crate::engine::GenerateRequest;
    use crate::records::store::Lookup;
    use crate::records::{RecordSetup, Records, RecordsSettings, job_of};
    use crate::tasks::lifecycle::Step;
    use crate::tasks::log::CancelReason;
    use crate::tasks::native_frames;
    use crate::tasks::task::{TaskEvent, TaskMeta};
    use crate::tasks::telemetry::Telemetry;
    use crate::tasks::validate::ValidTask;

    fn task(records: Option<&Arc<Records>>) -> Arc<TaskState> {
        let request = ValidTask {
            generate: GenerateRequest::text("a secret prompt", 8),
            priority: Priority::Batch,
            session_id: None,
            prompt_tokens: 4,
            workload: Default::default(),
            prompt_source: Default::default(),
        };
        let meta = TaskMeta {
            correlation_id: "c-1".into(),
            record: records.map(|r| {
                Arc::new(RecordSetup {
                    records: r.clone(),
                    engine: RecordedEngine {
                        name: "mock".into(),
                        version: "0.1.0".into(),
                        api: Default::default(),
                    },
                    model: RecordedModel {
                        name: "tiny".into(),
                        digest: Some("sha256:ab".into()),
                        file: None,
                    },
                    openai: None,
                })
            }),
            ..TaskMeta::default()
        };
        TaskState::new("p".into(), request, meta, tracing::Span::none(), Telemetry::new())
    }

    fn store() -> (tempfile::TempDir, Arc<Records>) {
        let dir = tempfile::tempdir().unwrap();
        let settings = RecordsSettings {
            enabled: true,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
        };
        let records = Records::open(dir.path(), settings).unwrap();
        (dir, records)
    }

    async fn record_of(records: &Records, id: &str) -> llorch_manifests::records::JobRecord {
        for _ in 0..200 {
            if let Some((_, bytes)) = records.get(Lookup::Job(id.into())).await.unwrap() {
                return job_of(&bytes).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no record of {id}");
    }

    fn events() -> Vec<TaskEvent> {
        vec![
            TaskEvent::Started(Started {
                queue_position: 0,
                predicted_start_ms: 0,
            }),
            TaskEvent::Tokens(vec![Token { t: "a\n".into(), i: 0 }, Token { t: "b".into(), i: 1 }]),
            TaskEvent::Tokens(vec![Token { t: "c".into(), i: 2 }]),
        ]
    }

    #[tokio::test]
    async fn a_finished_tasks_record_holds_its_native_stream_and_its_request() {
        let (_dir, records) = store();
        let task = task(Some(&records));
        let mut expected = Vec::new();
        for ev in events() {
            native_frames::render(&ev, &mut expected);
            assert!(task.send(ev));
        }
        task.step(Step::Ended {
            tokens_out: 3,
            decode_time_ms: 2,
            finish: FinishReason::Length,
            tokens_in: Some(4),
        });
        let mut rx = task.take_events().unwrap();
        while let Ok(ev) = rx.try_recv() {
            if matches!(ev, TaskEvent::End(_)) {
                native_frames::render(&ev, &mut expected);
            }
        }
        let record = record_of(&records, &task.id).await;
        assert_eq!(
            record.transcript.as_sse().as_bytes(),
            &expected[..],
            "the transcript is the native stream"
        );
        assert_eq!(record.state, TaskPhase::Done);
        assert_eq!(record.finish_reason, Some(FinishReason::Length));
        assert_eq!(record.request.prompt.as_deref(), Some("a secret prompt"));
        assert_eq!(record.request.priority, Priority::Batch);
        assert_eq!((record.tokens_in, record.tokens_out), (Some(4), 3));
        assert_eq!(record.model.digest.as_deref(), Some("sha256:ab"));
        assert_eq!(record.correlation_id, "c-1");
        assert_eq!(record.timings.decode_ms, Some(2));
    }

    #[tokio::test]
    async fn a_canceled_tasks_record_keeps_the_tokens_its_client_was_let_read() {
        let (_dir, records) = store();
        let task = task(Some(&records));
        for ev in events() {
            assert!(task.send(ev));
        }
        assert!(task.admit_tokens(2), "the client read two tokens");
        task.cancel(CancelReason::Disconnected);
        let record = record_of(&records, &task.id).await;
        assert_eq!(record.state, TaskPhase::Canceled);
        let tokens = record.transcript.events().filter(|e| e.event == "token").count();
        assert_eq!(tokens, 2);
    }

    #[test]
    fn an_unrecorded_task_keeps_no_transcript() {
        let task = task(None);
        for ev in events() {
            assert!(task.send(ev));
        }
        assert!(task.take_transcript().is_empty());
    }
}
