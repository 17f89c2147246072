//! `orchctl models list` — the model catalog as a table (Models, digest, size, lifecycle,
//! path) — and `orchctl models pull <name>`, which asks llama-orchd to fetch a Model now and
//! follows its status: a progress bar on a terminal (stderr), plain progress lines otherwise,
//! and a non-zero exit with the reason when the Model fails.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use llorch_manifests::api::{CatalogEntry, Lifecycle};
use llorch_manifests::status::{ModelPhase, ModelState};
use llorch_manifests::{Kind, ObjectRef};

use crate::Io;
use crate::cli::Output;
use crate::client::Client;
use crate::context::Context;
use crate::output::print_raw;
use crate::table::Table;

/// `orchctl models`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl models list
  orchctl models pull tiny              # fetch now, with a progress bar
  orchctl models pull tiny --timeout 30m")]
pub struct ModelsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ModelsCommand,
}

/// The `models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the catalog: every artifact, the Models that use it, its size and lifecycle.
    List(ListArgs),
    /// Fetch (or re-check) a Model now and follow it until it is Ready or fails.
    Pull(PullArgs),
}

/// `orchctl models list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `orchctl models pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The Model's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Give up after this long (e.g. 90s, 30m).
    #[arg(long, default_value = "2h", value_parser = crate::duration::parse)]
    pub timeout: Duration,
}

/// Runs `orchctl models …`.
pub async fn run(ctx: &Context, args: &ModelsArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let client = ctx.client()?;
    match &args.command {
        ModelsCommand::List(list) => {
            let entries: Vec<CatalogEntry> = client.get(&["v2", "catalog"], &[]).await?;
            if list.output != Output::Table {
                print_raw(io.out, list.output, &entries)?;
            } else if entries.is_empty() {
                writeln!(
                    io.err,
                    "the catalog is empty: no Model has been fetched or verified yet"
                )?;
            } else {
                write!(io.out, "{}", catalog_table(&entries))?;
            }
            Ok(0)
        }
        ModelsCommand::Pull(pull) => pull_model(&client, pull, io).await,
    }
}

/// The catalog as a table.
pub fn catalog_table(entries: &[CatalogEntry]) -> String {
    let mut table = Table::new(&["MODELS", "DIGEST", "SIZE", "LIFECYCLE", "PATH"]);
    for e in entries {
        let models = if e.models.is_empty() {
            "-".to_string()
        } else {
            e.models.join(",")
        };
        let digest = e.digest.strip_prefix("sha256:").unwrap_or(&e.digest);
        table.row(vec![
            models,
            format!("sha256:{}", digest.chars().take(12).collect::<String>()),
            human_bytes(e.size_bytes),
            match e.lifecycle {
                Lifecycle::Active => "Active",
                Lifecycle::Retired => "Retired",
            }
            .to_string(),
            e.path.clone(),
        ]);
    }
    table.render()
}

pub use llorch_manifests::units::human_bytes;

/// How often the Model's status is read while following a pull.
const POLL: Duration = Duration::from_millis(200);

/// A Failed phase read this soon after the pull may still be the one from before it (the
/// controller acts on its next pass); it counts only once the fetch was seen moving or after
/// this grace.
const STALE_FAILURE_GRACE: Duration = Duration::from_secs(3);

async fn pull_model(client: &Client, args: &PullArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let url = client.url(&["v2", "models", &args.name, "pull"])?;
    let response = client
        .http
        .post(url.clone())
        .send()
        .await
        .map_err(|e| client.transport(&e))?;
    let _: serde_json::Value = client.decode(&url, response).await?;
    let started = Instant::now();
    let mut progress = Progress::new(io.err_tty);
    let mut moved = false;
    let object = ObjectRef::new(Kind::Model, args.name.clone());
    loop {
        let view = client.object(&object).await?;
        let state = view.status.model.clone().unwrap_or_default();
        match state.phase {
            ModelPhase::Ready => {
                progress.finish(io, &state)?;
                writeln!(
                    io.out,
                    "model/{} ready: {} ({}) at {}",
                    args.name,
                    state.digest.as_deref().unwrap_or("no digest yet"),
                    human_bytes(state.bytes_total.unwrap_or(state.bytes_done)),
                    state.path.as_deref().unwrap_or_default()
                )?;
                return Ok(0);
            }
            ModelPhase::Failed if moved || started.elapsed() >= STALE_FAILURE_GRACE => {
                progress.abandon(io)?;
                let why = view
                    .status
                    .condition(llorch_manifests::status::ConditionType::Degraded)
                    .map(|c| format!("{}: {}", c.reason, c.message))
                    .unwrap_or_else(|| "see `orchctl describe model/NAME`".into());
                writeln!(io.err, "error: model/{} failed: {why}", args.name)?;
                return Ok(1);
            }
            ModelPhase::Failed => {}
            _ => {
                moved = true;
                progress.show(io, &state)?;
            }
        }
        if started.elapsed() > args.timeout {
            progress.abandon(io)?;
            anyhow::bail!(
                "model/{} is still {:?} after {}; it goes on in llama-orchd (see `orchctl describe model/{}`)",
                args.name,
                state.phase,
                crate::duration::human(args.timeout),
                args.name
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A bar on a terminal, a line per visible step otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Option<(ModelPhase, u64)>,
    last_line_at: Option<Instant>,
}

impl Progress {
    fn new(tty: bool) -> Progress {
        let bar = tty.then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg:12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress {
            bar,
            last_line: None,
            last_line_at: None,
        }
    }

    fn show(&mut self, io: &mut Io<'_>, state: &ModelState) -> std::io::Result<()> {
        let phase = phase_word(state.phase);
        if let Some(bar) = &self.bar {
            bar.set_length(state.bytes_total.unwrap_or(0));
            bar.set_position(state.bytes_done);
            bar.set_message(phase);
            return Ok(());
        }
        // Plain lines: on a phase change, and at most every 2 s while bytes move.
        let changed = self.last_line.is_none_or(|(p, _)| p != state.phase);
        let due = self.last_line_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(2))
            && self.last_line.is_none_or(|(_, b)| b != state.bytes_done);
        if changed || due {
            let total = state
                .bytes_total
                .map(|t| format!(" of {}", human_bytes(t)))
                .unwrap_or_default();
            writeln!(io.err, "{phase}: {}{total}", human_bytes(state.bytes_done))?;
            self.last_line = Some((state.phase, state.bytes_done));
            self.last_line_at = Some(Instant::now());
        }
        Ok(())
    }

    fn finish(&mut self, io: &mut Io<'_>, state: &ModelState) -> std::io::Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.set_length(state.bytes_total.unwrap_or(state.bytes_done));
            bar.set_position(state.bytes_total.unwrap_or(state.bytes_done));
            bar.finish_with_message("ready");
        } else if self.last_line.is_some() {
            writeln!(
                io.err,
                "ready: {}",
                human_bytes(state.bytes_total.unwrap_or(state.bytes_done))
            )?;
        }
        Ok(())
    }

    fn abandon(&mut self, _io: &mut Io<'_>) -> std::io::Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
        Ok(())
    }
}

fn phase_word(phase: ModelPhase) -> &'static str {
    match phase {
        ModelPhase::Pending => "pending",
        ModelPhase::Fetching => "fetching",
        ModelPhase::Verifying => "verifying",
        ModelPhase::Ready => "ready",
        ModelPhase::Failed => "failed",
        ModelPhase::NotFetched => "not fetched",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_table_shows_models_short_digest_human_size_and_lifecycle() {
        let entries = vec![
            CatalogEntry {
                digest: format!("sha256:{}", "ab".repeat(32)),
                size_bytes: 3 * 1024 * 1024 + 512 * 1024,
                path: "/c/blobs/sha256/abab".into(),
                refs: vec!["hf:o/r/x.gguf".into()],
                models: vec!["tiny".into(), "tiny2".into()],
                lifecycle: Lifecycle::Active,
                added_at: String::new(),
            },
            CatalogEntry {
                digest: format!("sha256:{}", "cd".repeat(32)),
                size_bytes: 100,
                path: "/m/old.gguf".into(),
                refs: vec!["file:/m/old.gguf".into()],
                models: vec![],
                lifecycle: Lifecycle::Retired,
                added_at: String::new(),
            },
        ];
        let text = catalog_table(&entries);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["MODELS", "DIGEST", "SIZE", "LIFECYCLE", "PATH"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "tiny,tiny2",
                "sha256:abababababab",
                "3.5",
                "MiB",
                "Active",
                "/c/blobs/sha256/abab"
            ]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["-", "sha256:cdcdcdcdcdcd", "100", "B", "Retired", "/m/old.gguf"]
        );
    }

    #[test]
    fn plain_progress_prints_phase_changes_and_not_every_poll() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut input: &[u8] = b"";
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            input: &mut input,
            err_tty: false,
        };
        let mut p = Progress::new(false);
        let mut st = ModelState {
            phase: ModelPhase::Fetching,
            bytes_done: 1024,
            bytes_total: Some(4096),
            ..ModelState::default()
        };
        p.show(&mut io, &st).unwrap();
        st.bytes_done = 2048;
        p.show(&mut io, &st).unwrap();
        st.phase = ModelPhase::Ready;
        p.finish(&mut io, &st).unwrap();
        let text = String::from_utf8(err).unwrap();
        assert_eq!(text, "fetching: 1.0 KiB of 4.0 KiB\nready: 4.0 KiB\n");
    }
}
