//! Command line: llama-server's own flags plus the mock's behaviour and fault knobs.
//!
//! Every mock-only flag has a `MOCK_*` environment fallback. Unknown flags are rejected (clap's
//! error names them), because a typo in a test fixture should fail loudly. This module parses and
//! validates; it does not touch the model file or the network.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::faults::HealthMode;
use crate::tokens::DEFAULT_SEED;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "mock-engine",
    version,
    about = "A test engine that looks like llama.cpp's llama-server (native and OpenAI APIs), with fault injection.",
    after_help = "llama-server's `-np N` is accepted as `--parallel N`, and `-ngl N` as `--n-gpu-layers N`."
)]
pub struct Args {
    /// Model file; it must exist and be readable (its contents are not read).
    #[arg(short = 'm', long, env = "MOCK_MODEL", value_name = "PATH")]
    pub model: PathBuf,

    /// Address to listen on.
    #[arg(long, env = "MOCK_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "MOCK_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Total context size in tokens, shared evenly between the slots.
    #[arg(short = 'c', long = "ctx-size", env = "MOCK_CTX_SIZE", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ctx_size: u32,

    /// Number of slots: generations that run at once; more requests wait for a slot.
    #[arg(long, env = "MOCK_PARALLEL", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub parallel: u32,

    /// Accepted for llama-server compatibility; /metrics is always served.
    #[arg(long)]
    pub metrics: bool,

    /// Accepted for llama-server compatibility; /slots is always served.
    #[arg(long)]
    pub slots: bool,

    /// Accepted for llama-server compatibility; no effect.
    #[arg(long = "no-cont-batching")]
    pub no_cont_batching: bool,

    /// Accepted for llama-server compatibility (`-ngl`, `--gpu-layers`); no effect, shown in /props.
    #[arg(long = "n-gpu-layers", visible_alias = "gpu-layers", value_name = "N")]
    pub n_gpu_layers: Option<String>,

    /// Accepted for llama-server compatibility; the mock's chat template is always used.
    #[arg(long)]
    pub jinja: bool,

    /// Serve /v1/embeddings and /embeddings (else they answer 501, as llama-server does).
    #[arg(long, visible_alias = "embedding", env = "MOCK_EMBEDDINGS", value_parser = clap::builder::BoolishValueParser::new())]
    pub embeddings: bool,

    /// Length of each embedding vector.
    #[arg(long = "embd-dim", env = "MOCK_EMBD_DIM", default_value_t = 16, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub embd_dim: u32,

    /// Seed for requests that give none (or -1). Default: 4294967295 (LLAMA_DEFAULT_SEED).
    #[arg(long, env = "MOCK_SEED", allow_negative_numbers = true)]
    pub seed: Option<i64>,

    /// Serve 503 "Loading model" for this long before becoming ready.
    #[arg(long = "load-delay-ms", env = "MOCK_LOAD_DELAY_MS", default_value_t = 0)]
    pub load_delay_ms: u64,

    /// Tokens per second per request; 0 = as fast as possible.
    #[arg(
        long = "token-rate",
        env = "MOCK_TOKEN_RATE",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub token_rate: f64,

    /// Model id shown in /v1/models and /props (default: the model's file name).
    #[arg(long, env = "MOCK_ALIAS")]
    pub alias: Option<String>,

    /// Fail to "load" the model: log llama.cpp-like errors and exit 1 (after --load-delay-ms).
    #[arg(long = "fail-at-start", env = "MOCK_FAIL_AT_START", value_parser = clap::builder::BoolishValueParser::new())]
    pub fail_at_start: bool,

    /// Exit abruptly with code 1 right after emitting N tokens in total (across requests).
    #[arg(long = "exit-after-tokens", env = "MOCK_EXIT_AFTER_TOKENS", value_name = "N")]
    pub exit_after_tokens: Option<u64>,

    /// After N tokens in total, stop sending tokens but keep connections open.
    #[arg(long = "hang-after-tokens", env = "MOCK_HANG_AFTER_TOKENS", value_name = "N")]
    pub hang_after_tokens: Option<u64>,

    /// /health once loaded: `ok`, `fail` (always 503) or `flap:<period_ms>` (alternates 200/503).
    #[arg(long, env = "MOCK_HEALTH", default_value = "ok", value_parser = parse_health)]
    pub health: HealthMode,
}

fn parse_health(s: &str) -> Result<HealthMode, String> {
    s.parse()
}

/// The validated settings the server runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub model_path: PathBuf,
    pub host: String,
    pub port: u16,
    pub ctx_size: u32,
    pub parallel: u32,
    pub default_seed: u64,
    pub load_delay: Duration,
    /// Pause before each token; `None` = as fast as possible.
    pub token_interval: Option<Duration>,
    pub alias: String,
    pub fail_at_start: bool,
    pub exit_after_tokens: Option<u64>,
    pub hang_after_tokens: Option<u64>,
    pub health: HealthMode,
    /// `--n-gpu-layers` as given (ignored).
    pub n_gpu_layers: Option<String>,
    /// `--jinja` (ignored).
    pub jinja: bool,
    pub embeddings: bool,
    pub embd_dim: u32,
}

impl Config {
    /// Context per slot, as llama-server splits it (`n_ctx_slot = n_ctx / n_parallel`).
    pub fn n_ctx_slot(&self) -> u32 {
        (self.ctx_size / self.parallel.max(1)).max(1)
    }

    /// Defaults for everything but the model, for tests.
    pub fn for_model(model_path: impl Into<PathBuf>) -> Self {
        let model_path = model_path.into();
        Self {
            alias: default_alias(&model_path),
            model_path,
            host: "127.0.0.1".into(),
            port: 8080,
            ctx_size: 4096,
            parallel: 1,
            default_seed: DEFAULT_SEED,
            load_delay: Duration::ZERO,
            token_interval: None,
            fail_at_start: false,
            exit_after_tokens: None,
            hang_after_tokens: None,
            health: HealthMode::Ok,
            n_gpu_layers: None,
            jinja: false,
            embeddings: false,
            embd_dim: 16,
        }
    }
}

impl TryFrom<Args> for Config {
    type Error = String;

    fn try_from(args: Args) -> Result<Self, Self::Error> {
        if !args.token_rate.is_finite() || args.token_rate < 0.0 {
            return Err(format!(
                "--token-rate must be a number of tokens per second >= 0, got {}",
                args.token_rate
            ));
        }
        if args.ctx_size < args.parallel {
            return Err(format!(
                "--ctx-size {} is smaller than --parallel {}: each slot needs at least one token of context",
                args.ctx_size, args.parallel
            ));
        }
        let default_seed = match args.seed {
            None | Some(-1) => DEFAULT_SEED,
            Some(seed) => u64::try_from(seed).map_err(|_| format!("--seed must be -1 or a number >= 0, got {seed}"))?,
        };
        let alias = match args.alias {
            Some(alias) if alias.trim().is_empty() => return Err("--alias must not be empty".into()),
            Some(alias) => alias,
            None => default_alias(&args.model),
        };
        Ok(Self {
            model_path: args.model,
            host: args.host,
            port: args.port,
            ctx_size: args.ctx_size,
            parallel: args.parallel,
            default_seed,
            load_delay: Duration::from_millis(args.load_delay_ms),
            token_interval: (args.token_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.token_rate)),
            alias,
            fail_at_start: args.fail_at_start,
            exit_after_tokens: args.exit_after_tokens,
            hang_after_tokens: args.hang_after_tokens,
            health: args.health,
            n_gpu_layers: args.n_gpu_layers,
            jinja: args.jinja,
            embeddings: args.embeddings,
            embd_dim: args.embd_dim,
        })
    }
}

fn default_alias(model: &std::path::Path) -> String {
    model.file_name().map_or_else(
        || model.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// llama-server's multi-letter short flags, which clap cannot declare, and their long forms.
const MULTI_LETTER_FLAGS: [(&str, &str); 2] = [("-np", "--parallel"), ("-ngl", "--n-gpu-layers")];

/// Rewrites llama-server's multi-letter short flags (`-np`, `-ngl`) to their long forms.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| {
            let Some(text) = arg.to_str() else { return arg };
            for (short, long) in MULTI_LETTER_FLAGS {
                if text == short {
                    return OsString::from(long);
                }
                if let Some(value) = text.strip_prefix(short).and_then(|rest| rest.strip_prefix('=')) {
                    return OsString::from(format!("{long}={value}"));
                }
            }
            arg
        })
        .collect()
}

/// Parses and validates a command line (including the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Config, clap::Error> {
    let args = Args::try_parse_from(normalize_args(args))?;
    Config::try_from(args).map_err(|message| {
        let mut command = <Args as clap::CommandFactory>::command();
        command.error(clap::error::ErrorKind::ValueValidation, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Result<Config, clap::Error> {
        parse(
            std::iter::once("mock-engine")
                .chain(line.split_whitespace())
                .map(OsString::from),
        )
    }

    #[test]
    fn the_orchestrators_command_line_parses() {
        let c = parse_line("--model /m/x.gguf --host 0.0.0.0 --port 9000 --ctx-size 2048 --parallel 4").unwrap();
        assert_eq!(c.model_path, PathBuf::from("/m/x.gguf"));
        assert_eq!(
            (c.host.as_str(), c.port, c.ctx_size, c.parallel),
            ("0.0.0.0", 9000, 2048, 4)
        );
        assert_eq!(c.n_ctx_slot(), 512);
        assert_eq!(c.alias, "x.gguf");
    }

    #[test]
    fn defaults_match_llama_server() {
        let c = parse_line("--model m.gguf").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.ctx_size, c.parallel),
            ("127.0.0.1", 8080, 4096, 1)
        );
        assert_eq!(c.default_seed, DEFAULT_SEED);
        assert_eq!(c.health, HealthMode::Ok);
        assert_eq!(c.token_interval, None);
    }

    #[test]
    fn llama_server_short_flags_and_compat_switches_are_accepted() {
        let c = parse_line("-m m.gguf -c 1024 -np 2 --metrics --slots --no-cont-batching --seed 7").unwrap();
        assert_eq!((c.ctx_size, c.parallel, c.default_seed), (1024, 2, 7));
        assert_eq!(parse_line("-m m.gguf -np=3").unwrap().parallel, 3);
        assert_eq!(parse_line("-m m.gguf --seed -1").unwrap().default_seed, DEFAULT_SEED);
    }

    #[test]
    fn behaviour_and_fault_knobs_parse() {
        let c = parse_line(
            "-m m.gguf --load-delay-ms 250 --token-rate 20 --alias smol --fail-at-start \
             --exit-after-tokens 5 --hang-after-tokens 3 --health flap:100",
        )
        .unwrap();
        assert_eq!(c.load_delay, Duration::from_millis(250));
        assert_eq!(c.token_interval, Some(Duration::from_millis(50)));
        assert_eq!(c.alias, "smol");
        assert!(c.fail_at_start);
        assert_eq!((c.exit_after_tokens, c.hang_after_tokens), (Some(5), Some(3)));
        assert_eq!(
            c.health,
            HealthMode::Flap {
                period: Duration::from_millis(100)
            }
        );
    }

    #[test]
    fn unknown_flags_are_rejected_by_name() {
        let err = parse_line("-m m.gguf --n-gpu-layer 99").unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
        assert!(err.to_string().contains("--n-gpu-layer"), "{err}");
    }

    #[test]
    fn llama_servers_gpu_layers_and_jinja_flags_are_accepted_and_kept_for_props() {
        // The product's Engine examples pass `--n-gpu-layers 999` to llama-server.
        for line in [
            "-m m --n-gpu-layers 999",
            "-m m -ngl 999",
            "-m m -ngl=999",
            "-m m --gpu-layers 999",
        ] {
            assert_eq!(parse_line(line).unwrap().n_gpu_layers.as_deref(), Some("999"), "{line}");
        }
        assert!(parse_line("-m m --jinja").unwrap().jinja);
    }

    #[test]
    fn embeddings_are_off_unless_asked_and_have_a_dimension() {
        let c = parse_line("-m m").unwrap();
        assert_eq!((c.embeddings, c.embd_dim), (false, 16));
        let c = parse_line("-m m --embeddings --embd-dim 8").unwrap();
        assert_eq!((c.embeddings, c.embd_dim), (true, 8));
        assert!(parse_line("-m m --embedding").unwrap().embeddings);
        assert!(parse_line("-m m --embd-dim 0").is_err());
    }

    #[test]
    fn a_missing_model_flag_is_an_error() {
        assert_eq!(
            parse_line("--port 1").unwrap_err().kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn bad_values_are_rejected_with_the_flag_named() {
        for (line, needle) in [
            ("-m m --parallel 0", "--parallel"),
            ("-m m --ctx-size 0", "--ctx-size"),
            ("-m m --ctx-size 2 --parallel 4", "--ctx-size"),
            ("-m m --token-rate -1", "--token-rate"),
            ("-m m --health maybe", "--health"),
            ("-m m --seed -5", "--seed"),
        ] {
            let err = parse_line(line).unwrap_err().to_string();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }
}
