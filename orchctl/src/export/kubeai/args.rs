//! vLLM's command line as KubeAI runs it. KubeAI starts `python3 -m
//! vllm.entrypoints.openai.api_server --model=<from the url> --served-model-name=<Model name>`
//! and appends `spec.args`, and it probes and routes to port 8000 (vLLM's default, on every
//! address). So the Engine's own `--model`, `--served-model-name`, `--host` and `--port` come
//! out, and the rest goes in as written. Pure string work.

use super::gap::KubeAiGap;

/// The flags KubeAI sets itself.
const KUBEAI_FLAGS: [&str; 4] = ["--model", "--served-model-name", "--host", "--port"];

/// `{model_path}`, `{host}` and `{port}`: left unfilled by the renderer, so that an argument
/// still holding one after the flags above are gone can be refused.
pub(super) const LLAMA_ORCH_ONLY: [&str; 3] = ["{model_path}", "{host}", "{port}"];

/// The Engine's vLLM arguments, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct VllmArgs {
    /// What the Engine passes as the model (`--model X`, `--model=X`, or the one positional
    /// argument `vllm serve` takes before its flags); the last one wins, as in vLLM.
    pub model: Option<String>,
    /// Everything else, in order.
    pub rest: Vec<String>,
}

/// Splits Engine `engine`'s arguments (placeholders filled, except [`LLAMA_ORCH_ONLY`]).
pub(super) fn split(engine: &str, args: Vec<String>) -> Result<VllmArgs, KubeAiGap> {
    let leading = args.iter().take_while(|a| !a.starts_with('-')).count();
    if leading > 1 || args.first().is_some_and(|a| is_command(a)) {
        return Err(KubeAiGap::Command {
            engine: engine.to_string(),
            first: args[0].clone(),
            count: leading,
        });
    }
    let mut args = args.into_iter().peekable();
    let mut model = if leading == 1 { args.next() } else { None };
    let mut rest = Vec::new();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (arg.as_str(), None),
        };
        if !KUBEAI_FLAGS.contains(&flag) {
            rest.push(arg);
            continue;
        }
        let is_model = flag == "--model";
        // `--served-model-name` takes one or more names; the others one value each.
        let many = flag == "--served-model-name";
        let mut values: Vec<String> = inline.into_iter().collect();
        if values.is_empty() {
            while let Some(v) = args.next_if(|v| !v.starts_with('-')) {
                values.push(v);
                if !many {
                    break;
                }
            }
        }
        if is_model {
            model = values.into_iter().next_back().or(model);
        }
    }
    if let Some((arg, placeholder)) = rest
        .iter()
        .find_map(|arg| LLAMA_ORCH_ONLY.iter().find(|p| arg.contains(**p)).map(|p| (arg, *p)))
    {
        return Err(KubeAiGap::Placeholder {
            engine: engine.to_string(),
            arg: arg.clone(),
            placeholder,
        });
    }
    Ok(VllmArgs { model, rest })
}

/// True for a program rather than a model: `vllm` (`vllm serve …`) or `python3` (`python3 -m
/// vllm.entrypoints…`), with or without a path.
fn is_command(arg: &str) -> bool {
    let program = arg.rsplit('/').next().unwrap_or(arg);
    matches!(program, "vllm" | "python" | "python3")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_flags_kubeai_sets_come_out_with_their_values_in_both_spellings() {
        let args = strings(&[
            "--model",
            "{model_path}",
            "--served-model-name",
            "a",
            "b",
            "--host={host}",
            "--port",
            "{port}",
            "--max-model-len",
            "8192",
            "--enforce-eager",
            "--tokenizer=Qwen/Qwen2.5-7B-Instruct",
        ]);
        let vllm = split("vllm", args).unwrap();
        assert_eq!(vllm.model.as_deref(), Some("{model_path}"));
        assert_eq!(
            vllm.rest,
            strings(&[
                "--max-model-len",
                "8192",
                "--enforce-eager",
                "--tokenizer=Qwen/Qwen2.5-7B-Instruct"
            ])
        );
    }

    #[test]
    fn a_positional_model_counts_and_the_last_model_flag_wins() {
        let two = split("v", strings(&["org/first", "--model=org/second", "--dtype", "half"])).unwrap();
        assert_eq!(two.model.as_deref(), Some("org/second"));
        assert_eq!(two.rest, strings(&["--dtype", "half"]));
        let none = split("v", strings(&["--enforce-eager"])).unwrap();
        assert_eq!(none.model, None);
        assert_eq!(none.rest, strings(&["--enforce-eager"]));
    }

    #[test]
    fn a_command_before_the_flags_is_refused() {
        let err = split("v", strings(&["python3", "-m", "vllm.entrypoints.openai.api_server"])).unwrap_err();
        assert_eq!(
            err,
            KubeAiGap::Command {
                engine: "v".into(),
                first: "python3".into(),
                count: 1
            }
        );
        let err = split("v", strings(&["vllm", "serve", "{model_path}"])).unwrap_err();
        assert!(matches!(err, KubeAiGap::Command { count: 3, .. }), "{err}");
        let err = split("v", strings(&["/usr/bin/vllm", "--port", "8000"])).unwrap_err();
        assert!(matches!(err, KubeAiGap::Command { count: 1, .. }), "{err}");
    }

    #[test]
    fn a_placeholder_left_in_another_argument_is_refused() {
        let err = split("v", strings(&["--model", "org/repo", "--tokenizer", "{model_path}"])).unwrap_err();
        assert_eq!(
            err,
            KubeAiGap::Placeholder {
                engine: "v".into(),
                arg: "{model_path}".into(),
                placeholder: "{model_path}",
            }
        );
        let err = split("v", strings(&["--api-server-addr={host}:{port}"])).unwrap_err();
        assert!(
            matches!(
                err,
                KubeAiGap::Placeholder {
                    placeholder: "{host}",
                    ..
                }
            ),
            "{err}"
        );
    }
}
