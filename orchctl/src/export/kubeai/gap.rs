//! [`KubeAiGap`]: why a Pool is not a KubeAI `Model`, one variant per gap, each worded so the
//! user knows what to change — or that the default format (`orchctl export kubernetes` without
//! `--format kubeai`) renders the Pool as it is.

use std::fmt;

/// The engines KubeAI's `Model` CRD knows (`spec.engine`), for the messages.
const KUBEAI_ENGINES: &str = "VLLM, OLlama, Infinity and FasterWhisper";

/// What keeps a Pool from being a KubeAI `Model`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KubeAiGap {
    /// KubeAI starts its own engine pods; it cannot front a server that is already running.
    #[error(
        "Engine `{engine}` is `external`: KubeAI starts the engine pods itself and cannot send work to a server that is already running; export it without `--format kubeai` (a Service that points at the server)"
    )]
    External {
        /// The Engine.
        engine: String,
    },
    /// An engine KubeAI does not run at all.
    #[error(
        "Engine `{engine}` is {server}, and KubeAI's engines are {KUBEAI_ENGINES}; export it without `--format kubeai`"
    )]
    NoKubeAiEngine {
        /// The Engine.
        engine: String,
        /// Which server it is.
        server: ForeignServer,
    },
    /// An OpenAI-compatible Engine that is not vLLM (SGLang, say): of KubeAI's engines only
    /// VLLM serves what `api: openai` Engines serve.
    #[error(
        "Engine `{engine}` runs `{image}`, which is not vLLM: an `api: openai` Engine maps onto KubeAI's VLLM engine only, and orchctl knows vLLM by `vllm` in the image's repository name (KubeAI's engines are {KUBEAI_ENGINES}); export it without `--format kubeai`"
    )]
    NotVllm {
        /// The Engine.
        engine: String,
        /// Its image.
        image: String,
    },
    /// The Model's `ref` is nothing KubeAI can load.
    #[error("Model `{model}` is `{reference}`: {kind}")]
    ModelRef {
        /// The Model.
        model: String,
        /// Its `ref`.
        reference: String,
        /// What kind of reference it is, and what to do.
        kind: RefGap,
    },
    /// The Engine passes vLLM a `--model` that is neither the Model nor a Hub repository.
    #[error(
        "Engine `{engine}` passes vLLM `--model {value}`: KubeAI sets `--model` itself, from the url of a model it fetches, so the Engine's must be `{{model_path}}` (the Model) or a Hugging Face repository `org/repo`"
    )]
    ModelArg {
        /// The Engine.
        engine: String,
        /// The value.
        value: String,
    },
    /// A placeholder only llama-orch can fill is left in an argument KubeAI passes on.
    #[error(
        "Engine `{engine}` uses `{placeholder}` in the argument `{arg}`: KubeAI sets vLLM's model, host and port itself and fills nothing else with them; drop that argument (only `--model`, `--served-model-name`, `--host` and `--port` may use it)"
    )]
    Placeholder {
        /// The Engine.
        engine: String,
        /// The argument.
        arg: String,
        /// The placeholder (`{model_path}`, `{host}` or `{port}`).
        placeholder: &'static str,
    },
    /// The args begin with a command, not with vLLM's flags.
    #[error(
        "Engine `{engine}`'s args begin with a command, not vLLM's flags (`{first}` …, {count} argument(s) before the first flag): KubeAI starts vLLM's OpenAI server itself and appends the Engine's flags; write the args as for the image's `vllm serve` entrypoint (an optional model, then flags)"
    )]
    Command {
        /// The Engine.
        engine: String,
        /// The first argument.
        first: String,
        /// How many arguments come before the first flag.
        count: usize,
    },
}

/// A server llama-orch runs that KubeAI has no engine for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForeignServer {
    /// llama.cpp's `llama-server` (`api: llamacpp`).
    LlamaCpp,
    /// Hugging Face text-generation-inference (`api: tgi`).
    Tgi,
}

impl fmt::Display for ForeignServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForeignServer::LlamaCpp => "llama.cpp's llama-server (`api: llamacpp`)",
            ForeignServer::Tgi => "text-generation-inference (`api: tgi`)",
        })
    }
}

/// Why a Model's `ref` is not a KubeAI url. KubeAI loads models from `hf://org/repo` (a whole
/// repository), `pvc://`, `s3://`, `gs://`, `oss://` and `ollama://` urls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefGap {
    /// `file:` — a file on this host.
    LocalFile,
    /// `https://…` — a plain download.
    Url,
    /// `hf:org/repo/file` or `hf:org/repo` (the repository's only GGUF file): one file, where
    /// KubeAI's `hf://` url names a repository.
    HubFile,
    /// Not a reference llama-orch reads (validation refuses it first).
    Invalid,
}

impl fmt::Display for RefGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefGap::LocalFile => {
                "a file on this host, which the cluster cannot read, and KubeAI loads models only from `hf://`, `pvc://`, `s3://`, `gs://`, `oss://` or `ollama://` urls; export it without `--format kubeai`"
            }
            RefGap::Url => {
                "a plain download, and KubeAI loads models only from `hf://`, `pvc://`, `s3://`, `gs://`, `oss://` or `ollama://` urls; export it without `--format kubeai` (an init container downloads it and checks its digest)"
            }
            RefGap::HubFile => {
                "one file of a Hugging Face repository (for vLLM, a GGUF file), and KubeAI's `hf://` url names a whole repository, which it hands vLLM as `--model org/repo`: vLLM reads a single GGUF file only from a local path; export it without `--format kubeai` (an init container fetches the file and checks its digest), or serve a safetensors repository: set the Engine's `--model` to `org/repo`"
            }
            RefGap::Invalid => "not a model reference llama-orch reads; `orchctl plan` says why",
        })
    }
}
