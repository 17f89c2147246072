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
            transcript: Vec::new(),
        };
        setup.records.submit(FinishedJob {
            record,
            transcript,
            tokens_streamed,
            created_ms,
        });
    }
}
