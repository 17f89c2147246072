//! `orchctl artifacts list|get` and `orchctl replay`: the job records, plans and diffs the
//! daemon keeps (issue 12). Parsing only; `artifacts.rs` runs them.

use clap::{Args, Subcommand, ValueEnum};
use llorch_manifests::records::ArtifactKind;

use super::Output;

/// `--kind`: what an artifact is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ArtifactKindArg {
    /// A finished task's record.
    Job,
    /// A provisioning plan.
    Plan,
    /// A manifest write's diff.
    Diff,
}

impl From<ArtifactKindArg> for ArtifactKind {
    fn from(kind: ArtifactKindArg) -> Self {
        match kind {
            ArtifactKindArg::Job => ArtifactKind::Job,
            ArtifactKindArg::Plan => ArtifactKind::Plan,
            ArtifactKindArg::Diff => ArtifactKind::Diff,
        }
    }
}

/// `orchctl artifacts`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl artifacts list                     # newest first: job records, plans, diffs
  orchctl artifacts list --kind job --pool chat -o json
  orchctl artifacts get task-18c2f0a1b2c3-4  # a job's record by its task id, transcript as text
  orchctl artifacts get sha256:0f3a… -o json # any artifact, as stored

A job record is kept for every finished task unless the daemon (`records.enabled`), its Pool
(`spec.records.enabled`) or the request (`record: false`, `X-Llorch-Record: off`) opted out;
retention (`records.maxBytes`, `records.maxAge`) removes the oldest first.")]
pub struct ArtifactsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ArtifactsCommand,
}

/// `orchctl artifacts list|get`.
#[derive(Debug, Subcommand)]
pub enum ArtifactsCommand {
    /// List artifacts, newest first.
    List(ArtifactsListArgs),
    /// Print one artifact (by `sha256:…` id, or a job's task id).
    Get(ArtifactsGetArgs),
}

/// `orchctl artifacts list`.
#[derive(Debug, Args)]
pub struct ArtifactsListArgs {
    /// Only job records, plans or diffs.
    #[arg(long, value_enum)]
    pub kind: Option<ArtifactKindArg>,
    /// Only this pool's job records.
    #[arg(long)]
    pub pool: Option<String>,
    /// At most this many (1–500).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: u32,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `orchctl artifacts get`.
#[derive(Debug, Args)]
pub struct ArtifactsGetArgs {
    /// `sha256:…`, or a task id.
    pub id: String,
    /// Output format (`table`: a job's transcript as text).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `orchctl replay`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl replay task-18c2f0a1b2c3-4         # same pool, same request, same seed: same tokens?

The daemon re-submits the recorded request to the same pool, only if it still serves the same
engine version and model digest, and compares the token texts and the finish reason.
Exit codes: 0 identical, 1 different (the first differing token is printed), 2 not
reproducible (what changed is printed), 3 the replay could not be asked for.")]
pub struct ReplayArgs {
    /// The job: its task id or its record's `sha256:…` id.
    pub job: String,
    /// Output format (`table`: one line; json/yaml: the daemon's report).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}
