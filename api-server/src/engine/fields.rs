//! Which OpenAI request fields each engine API honours: the one table behind "every field is
//! relayed or refused, never dropped" (docs/openai.md prints it).
//!
//! - `api: openai` (vLLM, SGLang, llama-cpp-python …): every field is forwarded; the engine
//!   is the judge, and its own 400 comes back to the client.
//! - `api: llamacpp`: requests go to llama-server's own `/v1`. OpenAI's fields are forwarded,
//!   except those llama-server does not implement (they would be ignored silently: refused),
//!   and llama.cpp's documented sampler extras pass too. Anything else is refused.
//! - `api: tgi`: chat goes to TGI's Messages API (OpenAI's shape: forwarded, TGI refuses what
//!   it does not know with its own 422). Raw prompts go to `/generate_stream`, which takes only
//!   the basic sampling fields: anything else is refused.
//!
//! The data plane's own fields (`model`, `stream`, `stream_options`, `max_tokens`,
//! `max_completion_tokens`, `n`, `priority`, `session_id`) are handled before this table and
//! never reach it.

use llorch_manifests::{ApiFlavour, Workload};

/// A client's own OpenAI fields and the endpoint they came to: checked against the chosen
/// Pool's engine API at admission, then relayed with the task.
#[derive(Clone, Debug)]
pub struct ClientFields {
    /// The endpoint.
    pub surface: Surface,
    /// The fields, minus the data plane's own.
    pub fields: super::Passthrough,
}

impl ClientFields {
    /// Refuses the first field that engine `engine`, speaking `api`, cannot honour.
    pub fn check(&self, api: ApiFlavour, engine: &str) -> Result<(), crate::error::ApiError> {
        check(self.surface, api, self.fields.keys().map(String::as_str))
            .map_err(|u| crate::error::ApiError::invalid_field(u.field(), u.message(engine, api)))
    }
}

/// The endpoint a body came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
    /// `/v1/embeddings`.
    Embeddings,
}

impl Surface {
    /// What a Pool must serve to take a body sent here.
    pub fn workload(self) -> Workload {
        match self {
            Surface::Chat | Surface::Completions => Workload::Generate,
            Surface::Embeddings => Workload::Embeddings,
        }
    }
}

/// OpenAI fields of chat completions, besides the data plane's.
pub const OPENAI_CHAT: &[&str] = &[
    "messages",
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "metadata",
    "modalities",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];

/// OpenAI fields of (legacy) completions, besides the data plane's.
pub const OPENAI_COMPLETIONS: &[&str] = &[
    "prompt",
    "best_of",
    "echo",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "presence_penalty",
    "seed",
    "stop",
    "suffix",
    "temperature",
    "top_p",
    "user",
];

/// OpenAI fields of embeddings, besides the data plane's.
pub const OPENAI_EMBEDDINGS: &[&str] = &["input", "dimensions", "encoding_format", "user"];

/// OpenAI fields llama-server's `/v1` does not implement (it would ignore them silently).
pub const LLAMACPP_UNSUPPORTED: &[&str] = &[
    "audio",
    "best_of",
    "dimensions",
    "echo",
    "function_call",
    "functions",
    "modalities",
    "prediction",
    "suffix",
    "verbosity",
    "web_search_options",
];

/// llama.cpp's own request fields (llama-server's README), forwarded to `api: llamacpp`.
pub const LLAMACPP_EXTRAS: &[&str] = &[
    "cache_prompt",
    "chat_template_kwargs",
    "dry_allowed_length",
    "dry_base",
    "dry_multiplier",
    "dry_penalty_last_n",
    "dry_sequence_breakers",
    "dynatemp_exponent",
    "dynatemp_range",
    "grammar",
    "id_slot",
    "ignore_eos",
    "json_schema",
    "min_keep",
    "min_p",
    "mirostat",
    "mirostat_eta",
    "mirostat_tau",
    "n_indent",
    "n_keep",
    "n_probs",
    "penalize_nl",
    "post_sampling_probs",
    "reasoning_format",
    "repeat_last_n",
    "repeat_penalty",
    "return_tokens",
    "samplers",
    "t_max_predict_ms",
    "timings_per_token",
    "top_k",
    "top_n_sigma",
    "typical_p",
    "xtc_probability",
    "xtc_threshold",
];

/// What TGI's `/generate_stream` takes from a completions body.
pub const TGI_GENERATE: &[&str] = &["prompt", "seed", "stop", "temperature", "top_p"];

/// Why a field is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// An OpenAI field this engine API cannot honour.
    NotHonoured {
        /// The field.
        field: String,
    },
    /// Not an OpenAI field, nor one of this engine API's extras.
    Unknown {
        /// The field.
        field: String,
    },
}

impl Unsupported {
    /// The field refused.
    pub fn field(&self) -> &str {
        match self {
            Unsupported::NotHonoured { field } | Unsupported::Unknown { field } => field,
        }
    }

    /// The refusal's message, naming the field, the engine and its API.
    pub fn message(&self, engine: &str, api: ApiFlavour) -> String {
        let api = api.as_str();
        match self {
            Unsupported::NotHonoured { field } => format!(
                "`{field}` cannot be honoured by engine `{engine}` (api: {api}); remove it, or serve this model with an engine that supports it (see docs/openai.md)"
            ),
            Unsupported::Unknown { field } => format!(
                "`{field}` is neither an OpenAI field nor one engine `{engine}` (api: {api}) takes; check its spelling (see docs/openai.md for the fields each engine API takes)"
            ),
        }
    }
}

/// The first field of `fields` that an engine speaking `api` cannot honour, in name order.
pub fn check<'a>(surface: Surface, api: ApiFlavour, fields: impl Iterator<Item = &'a str>) -> Result<(), Unsupported> {
    let openai = match surface {
        Surface::Chat => OPENAI_CHAT,
        Surface::Completions => OPENAI_COMPLETIONS,
        Surface::Embeddings => OPENAI_EMBEDDINGS,
    };
    for field in fields {
        let verdict = match api {
            ApiFlavour::Openai => Ok(()),
            // Chat goes to TGI's Messages API (OpenAI's shape); raw prompts to /generate_stream.
            ApiFlavour::Tgi if surface == Surface::Chat => Ok(()),
            // TGI serves no embeddings (that is TEI, another server).
            ApiFlavour::Tgi if surface == Surface::Embeddings => Err(Unsupported::NotHonoured { field: field.into() }),
            ApiFlavour::Tgi => {
                if TGI_GENERATE.contains(&field) {
                    Ok(())
                } else if openai.contains(&field) {
                    Err(Unsupported::NotHonoured { field: field.into() })
                } else {
                    Err(Unsupported::Unknown { field: field.into() })
                }
            }
            ApiFlavour::Llamacpp => {
                if LLAMACPP_UNSUPPORTED.contains(&field) {
                    Err(Unsupported::NotHonoured { field: field.into() })
                } else if openai.contains(&field) || LLAMACPP_EXTRAS.contains(&field) {
                    Ok(())
                } else {
                    Err(Unsupported::Unknown { field: field.into() })
                }
            }
        };
        verdict?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_engines_take_every_field() {
        let fields = ["tools", "guided_json", "anything"];
        assert_eq!(check(Surface::Chat, ApiFlavour::Openai, fields.into_iter()), Ok(()));
    }

    #[test]
    fn llamacpp_takes_openai_fields_and_its_extras_and_refuses_the_rest_by_name() {
        let ok = [
            "messages",
            "tools",
            "tool_choice",
            "response_format",
            "logprobs",
            "top_k",
            "grammar",
        ];
        assert_eq!(check(Surface::Chat, ApiFlavour::Llamacpp, ok.into_iter()), Ok(()));
        let err = check(Surface::Chat, ApiFlavour::Llamacpp, ["tools", "audio"].into_iter()).unwrap_err();
        assert_eq!(err, Unsupported::NotHonoured { field: "audio".into() });
        let msg = err.message("llama-cpp", ApiFlavour::Llamacpp);
        assert!(
            msg.contains("`audio`") && msg.contains("`llama-cpp`") && msg.contains("api: llamacpp"),
            "{msg}"
        );
        let err = check(
            Surface::Completions,
            ApiFlavour::Llamacpp,
            ["prompt", "top_kk"].into_iter(),
        )
        .unwrap_err();
        assert_eq!(err.field(), "top_kk");
        assert!(matches!(err, Unsupported::Unknown { .. }));
        // A chat-only field on the completions endpoint is not an OpenAI completions field.
        assert!(check(Surface::Completions, ApiFlavour::Llamacpp, ["tools"].into_iter()).is_err());
    }

    #[test]
    fn tgi_relays_chat_and_takes_only_basic_sampling_on_raw_prompts() {
        assert_eq!(
            check(Surface::Chat, ApiFlavour::Tgi, ["tools", "logprobs"].into_iter()),
            Ok(())
        );
        let ok = ["prompt", "seed", "stop", "temperature", "top_p"];
        assert_eq!(check(Surface::Completions, ApiFlavour::Tgi, ok.into_iter()), Ok(()));
        let err = check(
            Surface::Completions,
            ApiFlavour::Tgi,
            ["prompt", "logprobs"].into_iter(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Unsupported::NotHonoured {
                field: "logprobs".into()
            }
        );
        assert!(err.message("tgi-engine", ApiFlavour::Tgi).contains("api: tgi"));
    }
}
