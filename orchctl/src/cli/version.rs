//! `orchctl version`'s arguments.

use clap::Args;

use super::Output;

/// `orchctl version`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl version                  # this orchctl, and the daemon it talks to
  orchctl version --client         # this orchctl only; no daemon needed
  orchctl version -o json | jq -r .serverVersion.apiVersion

The daemon's versions come from GET /v2/meta/capabilities. Exit status: 0, or 1 when the
daemon cannot be asked (the client's version is printed first), like `kubectl version`.")]
pub struct VersionArgs {
    /// Only this orchctl's version: ask no daemon (and read no config).
    #[arg(long)]
    pub client: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}
