//! The command line: global flags and one struct per subcommand, each with examples in its
//! `--help`. Parsing only; what the commands do lives in their own modules.

mod completion;
mod export;
mod get;
mod records;
mod version;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
pub use completion::{CompletionArgs, ExplainArgs, Shell};
pub use export::{DEFAULT_GATEWAY_IMAGE, ExportArgs, ExportFormat, ExportTarget};
pub use get::{GetArgs, GetOutput, Resource, Target};
pub use records::{ArtifactKindArg, ArtifactsArgs, ArtifactsCommand, ArtifactsGetArgs, ArtifactsListArgs, ReplayArgs};
pub use version::VersionArgs;

const EXAMPLES: &str = "\
Examples:
  orchctl apply -f examples/                 # declare engines, models and pools
  orchctl get pools                          # what is running, and is it ready?
  orchctl wait pool/chat --for=condition=Ready --timeout=2m
  orchctl describe pool/chat                 # conditions, replicas, last error, events
  orchctl logs chat/0 --tail 50              # the engine's own words
  orchctl run chat \"Write a haiku about GPUs\" --max-tokens 64
  orchctl tasks                              # queued, running and recent tasks
  orchctl artifacts list --kind job          # job records (request, timings, transcript)
  orchctl replay task-18c2f0a1b2c3-4         # same request again: identical tokens? (exit 0)
  orchctl export kubernetes --with-gateway   # the same Pools as Kubernetes objects

Without --server (or $LLAMA_ORCH_URL), apply, diff and delete edit the manifests directory
on this machine and work without a running daemon, and the other commands ask the daemon at
the config's bind address. With a server named, every command goes to that daemon: apply,
diff and delete through its write API, which validates and writes its own directory (use
--token or $LLAMA_ORCH_TOKEN when it requires a token). apply, diff and delete first say on
stderr where they act. doctor always checks this machine.";

/// Control llama-orch: declare engines, models and pools, and see how they run.
#[derive(Debug, Parser)]
#[command(name = "orchctl", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Config file [default: $LLAMA_ORCH_HOME/config.yaml, LLAMA_ORCH_HOME defaulting to
    /// ~/.llama-orch]. It names the manifests directory and the daemon's bind address.
    #[arg(long, global = true, value_name = "PATH", env = "LLAMA_ORCH_CONFIG")]
    pub config: Option<PathBuf>,

    /// llama-orchd's URL [default: http://<bind from the config>]. Naming one sends apply,
    /// diff and delete through that daemon's write API instead of the local manifests directory.
    #[arg(
        long,
        global = true,
        env = "LLAMA_ORCH_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub server: Option<String>,

    /// The API token, when the daemon requires one (its `auth.tokenFile`); sent as
    /// `Authorization: Bearer`.
    #[arg(
        long,
        global = true,
        env = "LLAMA_ORCH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write manifests into the manifests directory, or through the named server's write API
    /// (validated first; all or nothing).
    Apply(ApplyArgs),
    /// Show what `apply` would change.
    Diff(DiffArgs),
    /// Remove an object's manifest from the manifests directory.
    Delete(DeleteArgs),
    /// List pools, models, engines, replicas or GPUs.
    Get(GetArgs),
    /// Show one object in detail: spec, conditions, replicas, last error, events.
    Describe(DescribeArgs),
    /// Wait until an object is Ready (for its current manifest), Degraded, or deleted.
    Wait(WaitArgs),
    /// List recent events.
    Events(EventsArgs),
    /// Print the last lines an engine container wrote.
    Logs(LogsArgs),
    /// Run a prompt on a pool and stream the reply to stdout.
    Run(RunArgs),
    /// List queued, running and recently finished tasks.
    Tasks(TasksArgs),
    /// Cancel a queued or running task.
    Cancel(CancelArgs),
    /// Stop admission to a pool; what runs may finish until a deadline.
    Drain(DrainArgs),
    /// Start a sleeping pool (`scaling.minReplicas: 0`) now, before a task needs it.
    Wake(WakeArgs),
    /// Replace a pool's replicas (onto another model, or the same spec), rolling back on failure.
    Reload(ReloadArgs),
    /// Change a pool's size: its replicas, or the bounds of a pool sized by demand.
    Scale(ScaleArgs),
    /// Is a pool live, Ready and admitting; what it runs; its last reload.
    Health(HealthArgs),
    /// The model catalog: list it, or fetch a Model now with a progress bar.
    Models(crate::models::ModelsArgs),
    /// Show what llama-orch will do for a Pool, before anything runs.
    Plan(PlanArgs),
    /// Job records, plans and diffs kept by the daemon: list them, or print one.
    Artifacts(ArtifactsArgs),
    /// Re-run a recorded job on its pool and compare: exit 0 identical, 1 different, 2 not
    /// reproducible (engine or model changed).
    Replay(ReplayArgs),
    /// Render Pools for another platform: Kubernetes Deployments and Services (with llama-orchd
    /// as a gateway in front), or KubeAI Models.
    Export(ExportArgs),
    /// Check this host: NVIDIA driver and NVML, container runtime and toolkit, disk, tools.
    Doctor(DoctorArgs),
    /// Print orchctl's version and the daemon's (with its API version).
    Version(VersionArgs),
    /// Print a shell completion script (bash, zsh, fish, …).
    Completion(CompletionArgs),
    /// Describe a manifest or config field: type, default, limits, allowed values, children.
    Explain(ExplainArgs),
}

/// `-o`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    #[default]
    Table,
    /// The raw objects as JSON.
    Json,
    /// The raw objects as YAML.
    Yaml,
}

/// `orchctl apply`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl apply -f examples/chat-pool.yaml
  orchctl apply -f examples/                  # every *.yaml / *.yml in the folder, sorted
  cat pool.yaml | orchctl apply -f -

Each object is written to <manifests dir>/<kind>-<name>.yaml (e.g. pool-chat.yaml). Relative
`file:` model references are made absolute against the input file's folder. Nothing is
written if any input is invalid or would break a reference.

With --server URL (or $LLAMA_ORCH_URL) the files go to that daemon's write API: it applies
the same checks plus its config's trust rules, and writes its own manifests directory. There,
`file:` references must be absolute paths on the daemon's machine.")]
pub struct ApplyArgs {
    /// A manifest file, a folder of them (not recursive), or `-` for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-", required = true)]
    pub files: Vec<String>,
}

/// `orchctl diff`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl diff -f examples/
  orchctl diff -f pool.yaml && echo no changes

Exit status: 0 no differences, 1 differences, 2 an error (like `kubectl diff`).")]
pub struct DiffArgs {
    /// A manifest file, a folder of them, or `-` for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-", required = true)]
    pub files: Vec<String>,
}

/// `orchctl delete`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl delete pool/chat
  orchctl delete pool chat
  orchctl delete -f examples/chat-pool.yaml

Only files that hold nothing but the object are removed; for a file with several documents,
orchctl names the file to edit instead. With --server, the daemon removes it (DELETE
/v2/manifests/<kind>/<name>).")]
pub struct DeleteArgs {
    /// `kind/name`, or a kind followed by a name.
    #[arg(value_name = "KIND/NAME", conflicts_with = "files")]
    pub target: Option<String>,
    /// The name, when the kind is given on its own.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Delete every object these manifests declare. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<String>,
    /// Succeed when the object is not there.
    #[arg(long)]
    pub ignore_not_found: bool,
}

/// `orchctl describe`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl describe pool/chat
  orchctl describe model tiny")]
pub struct DescribeArgs {
    /// `kind/name`, or a kind followed by a name.
    #[arg(value_name = "KIND/NAME")]
    pub target: String,
    /// The name, when the kind is given on its own.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

/// `orchctl wait`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl apply -f pool.yaml && orchctl wait pool/chat --for=condition=Ready --timeout=2m
  orchctl wait pool/chat --for=condition=Degraded --timeout=30s
  orchctl delete pool/chat && orchctl wait pool/chat --for=delete

A condition counts only once the daemon has acted on the manifest as it is on disk now, so
`apply` followed by `wait` never reports the previous version as Ready. Polls every 200 ms.")]
pub struct WaitArgs {
    /// `kind/name`.
    #[arg(value_name = "KIND/NAME")]
    pub target: String,
    /// `condition=Ready`, `condition=Progressing`, `condition=Degraded` or `delete`.
    #[arg(long = "for", value_name = "CONDITION", required = true)]
    pub for_: String,
    /// How long to wait, e.g. `30s`, `2m`, `500ms`.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub timeout: String,
}

/// `orchctl events`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl events
  orchctl events pool/chat --limit 100")]
pub struct EventsArgs {
    /// Only events about this object (`kind/name`), or of this kind (`pools`).
    #[arg(value_name = "KIND/NAME")]
    pub target: Option<String>,
    /// How many of the most recent events.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `orchctl logs`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl logs chat/0
  orchctl logs chat-1 --tail 200
  orchctl logs chat/0 -f --tail 10           # then follow: new lines as the engine writes them

-f ends when the container stops, the daemon goes away, or on Ctrl-C.")]
pub struct LogsArgs {
    /// `<pool>/<index>` or a replica id (`chat-0`).
    #[arg(value_name = "REPLICA")]
    pub replica: String,
    /// How many of the last lines.
    #[arg(long, default_value_t = 100)]
    pub tail: usize,
    /// Keep printing lines as the engine writes them.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

/// `--priority`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PriorityArg {
    /// Served first.
    #[default]
    Interactive,
    /// Waits behind interactive tasks.
    Batch,
}

impl From<PriorityArg> for llorch_manifests::task::Priority {
    fn from(p: PriorityArg) -> Self {
        match p {
            PriorityArg::Interactive => llorch_manifests::task::Priority::Interactive,
            PriorityArg::Batch => llorch_manifests::task::Priority::Batch,
        }
    }
}

/// `orchctl run`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl run chat \"Once upon a time\" --max-tokens 32 --seed 7
  orchctl run chat \"Explain KV caches in one paragraph\" --chat --temperature 0.2
  git diff | orchctl run code - --chat --priority batch > review.txt

Tokens go to stdout as they arrive; the queue position while waiting and a summary at the end
go to stderr. Ctrl-C cancels the task before exiting.

Exit status: 0 done, 1 failure, 3 refused by backpressure (HTTP 429: retry later),
4 the task failed with an error event, 130 interrupted (the task was canceled).")]
pub struct RunArgs {
    /// The pool to run on (the task never runs elsewhere).
    #[arg(value_name = "POOL")]
    pub pool: String,
    /// The prompt, or `-` to read it from stdin.
    #[arg(value_name = "PROMPT")]
    pub prompt: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_tokens: u32,
    /// Seed: the same prompt, parameters and seed on the same replica give the same tokens.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Sampling temperature, 0 to 2.
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,
    /// `interactive` is served before `batch`.
    #[arg(long, value_enum, default_value_t = PriorityArg::Interactive)]
    pub priority: PriorityArg,
    /// Keep a conversation on one replica (its KV cache stays warm).
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Send the prompt as a user chat message (the engine applies its chat template).
    #[arg(long)]
    pub chat: bool,
}

/// `orchctl tasks`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl tasks
  orchctl tasks -o json | jq '.[] | select(.state == \"failed\") | .error'

Finished tasks are kept for 5 minutes.")]
pub struct TasksArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `orchctl drain`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl drain pool/chat --deadline 30s     # refuse new tasks; cancel what still runs after 30 s
  orchctl drain pool/chat --resume           # admit again

While a pool drains, new tasks get HTTP 503 with code POOL_DRAINING and Retry-After; queued and
running tasks go on until the deadline, then end with a POOL_DRAINING error event.")]
pub struct DrainArgs {
    /// `pool/<name>`.
    #[arg(value_name = "POOL")]
    pub target: String,
    /// How long queued and running tasks may take, e.g. `30s`, `2m`.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub deadline: String,
    /// Lift the drain: admit tasks again.
    #[arg(long, conflicts_with = "deadline")]
    pub resume: bool,
}

/// `orchctl wake`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl wake pool/coder            # start it now; it stays up for its idleTimeout
  orchctl wake pool/coder --wait     # and wait until a replica is Ready

Only a Pool with `scaling: {minReplicas: 0}` sleeps. Waking it is what a task would do: if its
replica does not fit, idle Pools are evicted (lowest priority first), never busy ones.")]
pub struct WakeArgs {
    /// `pool/<name>`.
    #[arg(value_name = "POOL")]
    pub target: String,
    /// Wait until a replica is Ready.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits, e.g. `2m`.
    #[arg(long, value_name = "DURATION", default_value = "5m", requires = "wait")]
    pub timeout: String,
}

/// `orchctl reload`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl reload pool/chat --model tiny2 --wait   # serve another model; wait for the outcome
  orchctl reload pool/chat                        # new replicas of the same spec

New replicas start next to the old ones, which serve until every new one is Ready; then the
old ones finish their tasks and go. If a new replica fails (exits, never gets healthy), the new
ones are removed and the old ones serve on, untouched: the reload is ROLLED BACK and not
retried until the spec changes or you reload again. --model changes spec.model in the pool's
manifest file (it must hold only that pool).

Exit status: 0 accepted (with --wait: complete), 1 rolled back or an error.")]
pub struct ReloadArgs {
    /// `pool/<name>`.
    #[arg(value_name = "POOL")]
    pub target: String,
    /// The Model to serve from now on.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Wait until the rollout is complete or rolled back.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub timeout: String,
}

/// `orchctl scale`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl scale pool/chat --replicas 3          # a pool of fixed size: 3 replicas from now on
  orchctl scale pool/chat --replicas 0          # no replica; the pool stays declared
  orchctl scale pool/coder --max 3              # a pool sized by demand: up to 3 replicas
  orchctl scale pool/coder --min 1 --max 2      # keep one awake, at most two

The daemon writes the new size into the pool's manifest file (it must hold only that pool;
comments and layout are kept) and the controller works to it from its next pass: new replicas
start, and a replica it removes first finishes its tasks. --replicas is for a pool declared
with `replicas:`, --min and --max for one declared with `scaling:` (docs/scaling.md).

Exit status: 0 accepted, 1 an error.")]
#[command(group(clap::ArgGroup::new("size").required(true).multiple(true).args(["replicas", "min", "max"])))]
pub struct ScaleArgs {
    /// `pool/<name>`.
    #[arg(value_name = "POOL")]
    pub target: String,
    /// Replicas of a pool of fixed size from now on (`spec.replicas`, 0–16).
    #[arg(long, value_name = "N", conflicts_with_all = ["min", "max"])]
    pub replicas: Option<u32>,
    /// Fewest replicas of a pool sized by demand (`spec.scaling.minReplicas`; 0 lets it sleep).
    #[arg(long, value_name = "A")]
    pub min: Option<u32>,
    /// Most replicas of a pool sized by demand (`spec.scaling.maxReplicas`, 1–16).
    #[arg(long, value_name = "B")]
    pub max: Option<u32>,
}

/// `orchctl health`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl health pool/chat
  orchctl health pool/chat -o json

Exit status: 0 when the pool is Ready and admitting, 1 otherwise.")]
pub struct HealthArgs {
    /// `pool/<name>`.
    #[arg(value_name = "POOL")]
    pub target: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `orchctl cancel`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl cancel task-18f3a2c41b7-3

Once this answers, the task's stream carries no further token; `tokens_streamed` is exactly
what its client received.")]
pub struct CancelArgs {
    /// The task id (`orchctl tasks` lists them).
    #[arg(value_name = "TASK_ID")]
    pub task_id: String,
}

/// `orchctl plan`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl plan pool/chat
  orchctl plan -f examples/chat-pool.yaml     # the -f objects win over the manifests directory

Prints the model (reference, file, cache, digest check, VRAM when the daemon knows it), the
Engine's provisioning steps and policy, and per replica the container or process to create.
The same input gives the same text. Nothing is run or written.")]
pub struct PlanArgs {
    /// `pool/<name>`.
    #[arg(value_name = "pool/NAME", required_unless_present = "files")]
    pub target: Option<String>,
    /// Manifests to plan with (every Pool in them is planned). Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<String>,
}

/// `orchctl doctor`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl doctor
  orchctl doctor --json | jq '.[] | select(.level == \"fail\")'

Exit status: 0 when nothing FAILs, 1 otherwise. It works without a running daemon.")]
pub struct DoctorArgs {
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn get_accepts_singular_and_plural_resource_names() {
        assert_eq!("pool".parse(), Ok(Resource::Pools));
        let cli = Cli::parse_from(["orchctl", "get", "pool/chat", "-o", "wide", "-l", "team=demo", "-w"]);
        let Command::Get(args) = cli.command else {
            panic!("not get")
        };
        assert_eq!((args.resource(), args.name().unwrap()), (Resource::Pools, Some("chat")));
        assert_eq!(
            (args.output, args.selector.as_deref(), args.watch),
            (GetOutput::Wide, Some("team=demo"), true)
        );
        assert_eq!("GPUS".parse(), Ok(Resource::Gpus));
        assert!("widgets".parse::<Resource>().is_err());
    }

    #[test]
    fn apply_takes_repeated_files_and_wait_its_condition() {
        let cli = Cli::parse_from(["orchctl", "apply", "-f", "a.yaml", "-f", "dir"]);
        let Command::Apply(args) = cli.command else {
            panic!("not apply")
        };
        assert_eq!(args.files, ["a.yaml", "dir"]);
        let cli = Cli::parse_from(["orchctl", "wait", "pool/chat", "--for=condition=Ready", "--timeout=2m"]);
        let Command::Wait(args) = cli.command else {
            panic!("not wait")
        };
        assert_eq!((args.for_.as_str(), args.timeout.as_str()), ("condition=Ready", "2m"));
    }

    #[test]
    fn run_takes_a_pool_a_prompt_and_sampling_flags() {
        let cli = Cli::parse_from([
            "orchctl",
            "run",
            "chat",
            "hello there",
            "--max-tokens",
            "8",
            "--seed",
            "7",
            "--temperature",
            "0.5",
            "--priority",
            "batch",
            "--session",
            "s1",
            "--chat",
        ]);
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!((args.pool.as_str(), args.prompt.as_str()), ("chat", "hello there"));
        assert_eq!((args.max_tokens, args.seed, args.temperature), (8, Some(7), Some(0.5)));
        assert_eq!(args.priority, PriorityArg::Batch);
        assert_eq!(args.session.as_deref(), Some("s1"));
        assert!(args.chat);
    }
}
