//! `orchctl artifacts list|get` (job records, plans and diffs under `/v2/artifacts`) and
//! `orchctl replay JOB_ID`, whose exit code is the verdict: 0 identical, 1 different (the
//! first differing token printed), 2 not reproducible (what changed printed), 3 an error.

use std::time::Duration;

use llorch_manifests::records::{Artifact, ArtifactKind, ArtifactList, JobRecord, ReplayReport, Verdict};
use llorch_manifests::task::Token;

use crate::Io;
use crate::cli::{ArtifactsArgs, ArtifactsCommand, Output, ReplayArgs};
use crate::client::{Client, RequestError};
use crate::context::Context;
use crate::output::print_raw;
use crate::table::Table;

/// How long `orchctl replay` waits for the daemon (the replay runs the whole task).
pub const REPLAY_TIMEOUT: Duration = Duration::from_secs(600);

impl Client {
    /// `GET /v2/artifacts`.
    pub async fn artifacts(&self, query: &[(&str, String)]) -> Result<ArtifactList, RequestError> {
        self.get(&["v2", "artifacts"], query).await
    }

    /// `GET /v2/artifacts/{id}` (an artifact id or a task id).
    pub async fn artifact(&self, id: &str) -> Result<serde_json::Value, RequestError> {
        self.get(&["v2", "artifacts", id], &[]).await
    }

    /// `POST /v2/artifacts/{id}/replay`.
    pub async fn replay(&self, id: &str) -> Result<ReplayReport, RequestError> {
        let url = self.url(&["v2", "artifacts", id, "replay"])?;
        let response = self
            .http
            .post(url.clone())
            .timeout(REPLAY_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        self.decode(&url, response).await
    }

    /// `POST /v2/artifacts {"kind", "content"}`: the stored id.
    pub async fn store_artifact(
        &self,
        kind: ArtifactKind,
        content: &serde_json::Value,
    ) -> Result<String, RequestError> {
        let url = self.url(&["v2", "artifacts"])?;
        let response = self
            .http
            .post(url.clone())
            .json(&serde_json::json!({ "kind": kind.as_str(), "content": content }))
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let created: llorch_manifests::records::ArtifactCreated = self.decode(&url, response).await?;
        Ok(created.id)
    }
}

/// `orchctl artifacts …`.
pub async fn run(ctx: &Context, args: &ArtifactsArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let client = ctx.client()?;
    match &args.command {
        ArtifactsCommand::List(l) => {
            let mut query = vec![("limit", l.limit.to_string())];
            if let Some(k) = l.kind {
                query.push(("kind", ArtifactKind::from(k).as_str().to_string()));
            }
            if let Some(p) = &l.pool {
                query.push(("pool", p.clone()));
            }
            let list = client.artifacts(&query).await?;
            match l.output {
                Output::Table if list.items.is_empty() => writeln!(io.err, "No artifacts found.")?,
                Output::Table => write!(io.out, "{}", table(&list).render())?,
                format => print_raw(io.out, format, &list)?,
            }
        }
        ArtifactsCommand::Get(g) => {
            let raw = client.artifact(&g.id).await?;
            match g.output {
                Output::Table => print_readable(&raw, io)?,
                format => print_raw(io.out, format, &raw)?,
            }
        }
    }
    Ok(0)
}

/// ID KIND JOB POOL STATE MODEL TOKENS FINISH CREATED SIZE.
pub fn table(list: &ArtifactList) -> Table {
    let mut t = Table::new(&[
        "ID", "KIND", "JOB", "POOL", "STATE", "MODEL", "TOKENS", "FINISH", "CREATED", "SIZE",
    ]);
    let dash = || "-".to_string();
    for e in &list.items {
        let s = &e.summary;
        t.row(vec![
            short_id(&e.id),
            e.kind.to_string(),
            e.job.clone().unwrap_or_else(dash),
            e.pool.clone().unwrap_or_else(dash),
            s.state.map_or_else(dash, |p| p.as_str().to_string()),
            s.model.clone().unwrap_or_else(dash),
            s.tokens_out.map_or_else(dash, |n| n.to_string()),
            s.finish_reason.map_or_else(dash, |f| f.as_str().to_string()),
            e.created_at.clone(),
            e.size_bytes.to_string(),
        ]);
    }
    t
}

/// `sha256:` and the first 12 hex digits.
fn short_id(id: &str) -> String {
    id.chars().take(19).collect()
}

/// A job record as people read it (the transcript's text, then its end); other artifacts as
/// YAML.
fn print_readable(raw: &serde_json::Value, io: &mut Io<'_>) -> anyhow::Result<()> {
    let Ok(Artifact::Job(job)) = serde_json::from_value::<Artifact>(raw.clone()) else {
        return print_raw(io.out, Output::Yaml, raw);
    };
    print_job(&job, io)
}

fn print_job(job: &JobRecord, io: &mut Io<'_>) -> anyhow::Result<()> {
    let o = &mut *io.out;
    writeln!(o, "Job:          {}", job.task_id)?;
    writeln!(o, "State:        {}", job.state.as_str())?;
    writeln!(
        o,
        "Pool:         {} (replica {})",
        job.pool,
        job.replica.as_deref().unwrap_or("-")
    )?;
    writeln!(
        o,
        "Engine:       {} {} ({:?})",
        job.engine.name, job.engine.version, job.engine.api
    )?;
    writeln!(
        o,
        "Model:        {} {}",
        job.model.name,
        job.model.digest.as_deref().unwrap_or("(no digest)")
    )?;
    writeln!(o, "Identity:     {}", job.identity)?;
    writeln!(o, "Created:      {}", job.created_at)?;
    let r = &job.request;
    writeln!(
        o,
        "Sampling:     seed {} temperature {} top_p {} max_tokens {}",
        r.seed.map_or_else(|| "-".into(), |s| s.to_string()),
        r.temperature.map_or_else(|| "-".into(), |t| t.to_string()),
        r.top_p.map_or_else(|| "-".into(), |t| t.to_string()),
        r.max_tokens
    )?;
    let t = &job.timings;
    let ms = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| format!("{v} ms"));
    writeln!(
        o,
        "Timings:      queue {} · first token {} · decode {} · total {} ms",
        ms(t.queue_wait_ms),
        ms(t.ttft_ms),
        ms(t.decode_ms),
        t.total_ms
    )?;
    writeln!(
        o,
        "Tokens:       in {} · out {} · finish {}",
        job.tokens_in.map_or_else(|| "-".into(), |n| n.to_string()),
        job.tokens_out,
        job.finish_reason.map_or("-", |f| f.as_str())
    )?;
    if let Some(e) = &job.error {
        writeln!(o, "Error:        {} {}", e.code.as_str(), e.message)?;
    }
    writeln!(o, "Transcript ({} events):", job.transcript.len())?;
    let mut text = String::new();
    for e in job.transcript.events() {
        match e.event {
            "token" => {
                if let Ok(t) = serde_json::from_str::<Token>(e.data) {
                    text.push_str(&t.t);
                }
            }
            other => {
                if !text.is_empty() {
                    writeln!(o, "  {}", text.replace('\n', "\n  "))?;
                    text.clear();
                }
                writeln!(o, "  [{other}] {}", e.data)?;
            }
        }
    }
    if !text.is_empty() {
        writeln!(o, "  {}", text.replace('\n', "\n  "))?;
    }
    Ok(())
}

/// `orchctl replay JOB_ID`.
pub async fn replay(ctx: &Context, args: &ReplayArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    // Exit code 1 means "different": a failure to ask is 3.
    let client = match ctx.client() {
        Ok(c) => c,
        Err(e) => {
            writeln!(io.err, "error: {e:#}")?;
            return Ok(3);
        }
    };
    let report = match client.replay(&args.job).await {
        Ok(r) => r,
        Err(e) => {
            writeln!(io.err, "error: {e}")?;
            return Ok(3);
        }
    };
    if args.output != Output::Table {
        print_raw(io.out, args.output, &report)?;
    }
    let replayed = report.replay_task_id.as_deref().unwrap_or("-");
    Ok(match report.verdict {
        Verdict::Identical => {
            if args.output == Output::Table {
                writeln!(
                    io.out,
                    "identical: replay {replayed} matches job {} token for token",
                    args.job
                )?;
            }
            0
        }
        Verdict::Different => {
            if let Some(d) = &report.first_difference {
                writeln!(
                    io.err,
                    "different: replay {replayed} departs at token {}: recorded {:?}, replayed {:?}",
                    d.index, d.recorded, d.replayed
                )?;
            }
            1
        }
        Verdict::NotReproducible => {
            writeln!(
                io.err,
                "not reproducible: job {} ran on what its Pool no longer serves:",
                args.job
            )?;
            for c in &report.changed {
                writeln!(io.err, "  {}: recorded {}, now {}", c.what, c.recorded, c.now)?;
            }
            2
        }
    })
}
