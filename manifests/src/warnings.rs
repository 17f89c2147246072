//! [`Warning`]: manifests that are valid and will run, but probably not as meant — found from
//! the declared objects alone, so `orchctl plan` and `orchctl doctor` show the same findings
//! from the same rule.
//!
//! The one rule today: a llama.cpp Engine on a Pool (every Pool gets at least one GPU per
//! replica) whose arguments do not offload layers to the GPU. llama-server computes on the
//! CPU unless told with `-ngl` / `--n-gpu-layers` / `--gpu-layers` (or `LLAMA_ARG_N_GPU_LAYERS`
//! in its environment), so such a replica holds a GPU and runs slowly on the CPU.
//!
//! This module only finds; it never refuses a manifest (validation does that) and prints
//! nothing.

use std::fmt;

use crate::parse::Located;
use crate::secrets::EnvValue;
use crate::{AnyObject, ApiFlavour, Engine, EngineSpec, Kind, ObjectRef, Pool, Provisioning};

/// llama-server's flags for the number of layers to offload.
const GPU_LAYER_FLAGS: [&str; 3] = ["-ngl", "--n-gpu-layers", "--gpu-layers"];
/// llama-server reads a flag it was not given from `LLAMA_ARG_<FLAG>`.
const GPU_LAYER_ENV: &str = "LLAMA_ARG_N_GPU_LAYERS";

/// Something declared that will run, but probably not as meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// A llama.cpp Engine on a GPU Pool that offloads no layer: it computes on the CPU.
    NoGpuOffload {
        /// The Engine's name.
        engine: String,
        /// The Pool that runs it.
        pool: String,
    },
}

impl Warning {
    /// A short stable name, e.g. for `orchctl doctor`'s check column.
    pub fn code(&self) -> &'static str {
        match self {
            Warning::NoGpuOffload { .. } => "gpu-offload",
        }
    }

    /// The edit that silences it.
    pub fn fix(&self) -> String {
        match self {
            Warning::NoGpuOffload { engine, .. } => {
                format!("in engine/{engine}: `extraArgs: [--n-gpu-layers, \"999\"]`")
            }
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NoGpuOffload { engine, pool } => write!(
                f,
                "engine `{engine}` (pool `{pool}`) offloads no layers to the GPU: llama-server computes on \
                 the CPU unless told; add `--n-gpu-layers 999` to its args"
            ),
        }
    }
}

/// What is worth a warning about `pool` run by `engine`.
pub fn for_pool(pool: &Pool, engine: &Engine) -> Vec<Warning> {
    let mut found = Vec::new();
    // An external engine was started by someone else: its arguments are not ours to read.
    let launched = engine.spec.provisioning != Provisioning::External;
    let on_gpus = pool.spec.gpus_per_replica > 0;
    if launched && on_gpus && engine.spec.api == ApiFlavour::Llamacpp && !offloads(&engine.spec) {
        found.push(Warning::NoGpuOffload {
            engine: engine.name().to_owned(),
            pool: pool.name().to_owned(),
        });
    }
    found
}

/// Every warning about the declared Pools whose Engine is declared too, in declaration order.
pub fn for_set(objects: &[Located]) -> Vec<Warning> {
    let engine = |name: &str| {
        objects.iter().rev().find_map(|l| match &l.object {
            AnyObject::Engine(e) if l.object.object_ref() == ObjectRef::new(Kind::Engine, name) => Some(e),
            _ => None,
        })
    };
    objects
        .iter()
        .filter_map(|l| match &l.object {
            AnyObject::Pool(pool) => Some((pool, engine(&pool.spec.engine)?)),
            _ => None,
        })
        .flat_map(|(pool, engine)| for_pool(pool, engine))
        .collect()
}

/// Whether llama-server started with this spec offloads any layer: the last GPU-layers flag
/// in `args` + `extraArgs` decides (llama-server reads them in order), else the environment.
/// Also what the controller's NotOnGpu check reads to choose its fix.
pub fn offloads(spec: &EngineSpec) -> bool {
    let args: Vec<&str> = spec.args.iter().chain(&spec.extra_args).map(String::as_str).collect();
    let mut layers: Option<Option<&str>> = None;
    for (i, arg) in args.iter().enumerate() {
        if GPU_LAYER_FLAGS.contains(arg) {
            layers = Some(args.get(i + 1).copied());
        } else if let Some((flag, value)) = arg.split_once('=')
            && GPU_LAYER_FLAGS.contains(&flag)
        {
            layers = Some(Some(value));
        }
    }
    match layers {
        Some(value) => value.is_some_and(offloads_layers),
        None => match spec.env.get(GPU_LAYER_ENV) {
            Some(EnvValue::Literal(value)) => offloads_layers(value),
            // Read when the replica starts: not knowable here, so not worth a warning.
            Some(EnvValue::From(_)) => true,
            None => false,
        },
    }
}

/// A GPU-layers value that offloads something: any number but 0, or a word llama-server
/// accepts instead of one (`auto`, `all`).
fn offloads_layers(value: &str) -> bool {
    match value.trim().parse::<i64>() {
        Ok(n) => n != 0,
        Err(_) => !value.trim().is_empty(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn objects(engine_spec: &str, pool_spec: &str) -> Vec<Located> {
        let yaml = format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: llama}}\nspec: {engine_spec}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: m}}\nspec: {{ref: 'file:/m.gguf', ctxMax: 4096}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec: {pool_spec}\n"
        );
        crate::parse_file("/m/stack.yaml", yaml.as_bytes()).unwrap()
    }

    fn warnings(engine_spec: &str) -> Vec<Warning> {
        for_set(&objects(engine_spec, "{engine: llama, model: m, replicas: 1}"))
    }

    fn no_offload() -> Vec<Warning> {
        vec![Warning::NoGpuOffload {
            engine: "llama".into(),
            pool: "chat".into(),
        }]
    }

    #[test]
    fn a_llamacpp_engine_with_the_default_args_offloads_nothing_and_says_how_to_fix_it() {
        let found = warnings("{image: 'img:1', version: '1'}");
        assert_eq!(found, no_offload());
        assert_eq!(
            found[0].to_string(),
            "engine `llama` (pool `chat`) offloads no layers to the GPU: llama-server computes on the CPU \
             unless told; add `--n-gpu-layers 999` to its args"
        );
        assert_eq!(found[0].code(), "gpu-offload");
    }

    #[test]
    fn any_spelling_of_the_flag_with_layers_in_args_or_extra_args_is_enough() {
        for spec in [
            "{image: 'img:1', version: '1', extraArgs: [--n-gpu-layers, '999']}",
            "{image: 'img:1', version: '1', extraArgs: [-ngl, '33']}",
            "{image: 'img:1', version: '1', args: [--model, '{model_path}', --gpu-layers, '-1']}",
            "{image: 'img:1', version: '1', extraArgs: ['--n-gpu-layers=all']}",
            "{image: 'img:1', version: '1', extraArgs: [-ngl, auto]}",
            "{image: 'img:1', version: '1', env: {LLAMA_ARG_N_GPU_LAYERS: '99'}}",
        ] {
            assert_eq!(warnings(spec), vec![], "{spec}");
        }
    }

    #[test]
    fn zero_layers_or_a_flag_without_a_value_offloads_nothing_and_the_last_flag_wins() {
        for spec in [
            "{image: 'img:1', version: '1', extraArgs: [--n-gpu-layers, '0']}",
            "{image: 'img:1', version: '1', extraArgs: [-ngl]}",
            "{image: 'img:1', version: '1', args: [-ngl, '99'], extraArgs: ['--n-gpu-layers=0']}",
            "{image: 'img:1', version: '1', env: {LLAMA_ARG_N_GPU_LAYERS: '0'}}",
        ] {
            assert_eq!(warnings(spec), no_offload(), "{spec}");
        }
    }

    #[test]
    fn other_apis_and_external_engines_are_not_llama_servers_we_start() {
        assert_eq!(warnings("{image: 'img:1', version: '1', api: openai}"), vec![]);
        assert_eq!(warnings("{image: 'img:1', version: '1', api: tgi}"), vec![]);
        assert_eq!(
            warnings("{provisioning: external, url: 'http://127.0.0.1:9', version: '1'}"),
            vec![]
        );
    }

    #[test]
    fn a_pool_whose_engine_is_not_declared_has_nothing_to_check() {
        let mut set = objects(
            "{image: 'img:1', version: '1'}",
            "{engine: other, model: m, replicas: 1}",
        );
        assert_eq!(for_set(&set), vec![]);
        set.retain(|l| l.object.object_ref().kind != Kind::Engine);
        assert_eq!(for_set(&set), vec![]);
    }
}
