//! `orchctl completion` and `orchctl explain`: arguments only; `completion.rs` and `explain.rs`
//! run them. Neither needs a config or a daemon.

use clap::Args;
pub use clap_complete::Shell;

/// `orchctl completion`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  source <(orchctl completion bash)                                   # this shell only
  orchctl completion bash > ~/.local/share/bash-completion/completions/orchctl
  orchctl completion zsh > \"${fpath[1]}/_orchctl\"                     # then restart zsh
  orchctl completion fish > ~/.config/fish/completions/orchctl.fish")]
pub struct CompletionArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `orchctl explain`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl explain pool                      # the kind's top-level fields
  orchctl explain pool.spec.scaling         # one field: type, default, limits, children
  orchctl explain engine.spec.health.intervalMs
  orchctl explain config.gpus               # the daemon's config file

Field help comes from the JSON Schemas orchctl was built with (schemas/ in the repository).")]
pub struct ExplainArgs {
    /// A dotted path: `pool`, `engine`, `model` or `config`, then field names, e.g.
    /// `pool.spec.scaling.maxReplicas`.
    #[arg(value_name = "KIND[.FIELD…]")]
    pub path: String,
}
