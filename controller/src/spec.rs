//! Turns (Engine, Model, Pool, replica index, GPUs) into the exact container to run and the
//! spec hash that identifies it. Pure: no I/O, unit-tested.

use std::path::Path;

use llorch_manifests::hash::short_hash;
use llorch_manifests::identity::{ReplicaLabels, container_name};
use llorch_manifests::{Endpoint, EngineSpec, ModelSpec, PoolSpec};
use serde::Serialize;

use crate::runtime::{ContainerSpec, GpuAttachment, Launch, Mount};

/// Where model files appear inside engine containers.
pub const MODEL_DIR_IN_CONTAINER: &str = "/models";

/// The inputs of one replica's container.
#[derive(Clone, Debug)]
pub struct ReplicaInputs<'a> {
    /// This daemon's instance label.
    pub instance: &'a str,
    /// Pool name.
    pub pool_name: &'a str,
    /// Pool spec.
    pub pool: &'a PoolSpec,
    /// Engine spec.
    pub engine: &'a EngineSpec,
    /// Model spec.
    pub model: &'a ModelSpec,
    /// The model file on the host, resolved and checked.
    pub model_path: &'a Path,
    /// Replica index.
    pub index: u32,
    /// GPU indices for this replica.
    pub gpus: &'a [u32],
    /// Whether those GPUs are simulated.
    pub gpus_simulated: bool,
}

/// The parts of the inputs that, when changed, require a new container. Replica count, queue
/// and restart policy are deliberately absent: changing them must not restart engines. The
/// model is identified by its resolved file (and digest), not by how `ref` spells it.
#[derive(Serialize)]
struct HashInputs<'a> {
    engine: &'a EngineSpec,
    model_path: &'a Path,
    model_digest: &'a Option<String>,
    ctx_size: u32,
    slots: u32,
    gpus: &'a [u32],
    gpus_simulated: bool,
    /// Absent (not `null`) when unset, so Pools without a split keep their hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    tensor_split: Option<&'a Vec<u32>>,
}

impl ReplicaInputs<'_> {
    /// Context size: [`PoolSpec::effective_ctx`].
    pub fn ctx_size(&self) -> u32 {
        self.pool.effective_ctx(self.model)
    }

    /// The spec hash of this replica's container.
    pub fn spec_hash(&self) -> String {
        short_hash(&HashInputs {
            engine: self.engine,
            model_path: self.model_path,
            model_digest: &self.model.digest,
            ctx_size: self.ctx_size(),
            slots: self.pool.slots_per_replica,
            gpus: self.gpus,
            gpus_simulated: self.gpus_simulated,
            tensor_split: self.pool.tensor_split.as_ref(),
        })
    }

    /// The model path as the engine sees it.
    pub fn model_path_in_container(&self) -> String {
        let file = self
            .model_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        format!("{MODEL_DIR_IN_CONTAINER}/{file}")
    }

    /// The container to create. `suffix` makes the name unique across restarts.
    pub fn container_spec(&self, suffix: &str) -> ContainerSpec {
        let hash = self.spec_hash();
        // A `binary` engine is a plain process: it reads the model where it is, listens on
        // loopback, and its `{port}` is picked (and filled) by the process runtime.
        let executable = match self.engine.provisioning {
            llorch_manifests::Provisioning::Binary => self.engine.executable.clone(),
            _ => None,
        };
        let model_in = match executable {
            Some(_) => self.model_path.display().to_string(),
            None => self.model_path_in_container(),
        };
        let (port, host) = match executable {
            Some(_) => ("{port}".to_string(), Endpoint::LOOPBACK),
            None => (self.engine.port.to_string(), "0.0.0.0"),
        };
        let args = engine_args(
            self.engine,
            self.pool,
            &Placeholders {
                model_path: &model_in,
                port: &port,
                ctx_size: self.ctx_size(),
                host,
            },
        );
        let gpu_list = self.gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        // The runtime exposes only the requested devices, renumbered from 0 inside the
        // container: NVIDIA_VISIBLE_DEVICES names host devices (for the NVIDIA runtime hook),
        // CUDA_VISIBLE_DEVICES the container's own indices. Host indices in CUDA_VISIBLE_DEVICES
        // would hide the devices and invite a CPU fallback.
        // A process sees the host's devices, so it gets host indices.
        let local_list = match executable {
            Some(_) => gpu_list.clone(),
            None => (0..self.gpus.len())
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","),
        };
        // `valueFrom` is read now; the Engine's check already refused one that cannot be read.
        let mut env: Vec<(String, String)> = self
            .engine
            .env
            .iter()
            .filter_map(|(k, v)| v.resolve().ok().map(|v| (k.clone(), v)))
            .collect();
        env.push(("CUDA_VISIBLE_DEVICES".into(), local_list));
        env.push(("NVIDIA_VISIBLE_DEVICES".into(), gpu_list.clone()));
        if self.gpus_simulated {
            env.push(("LLAMA_ORCH_GPUS_SIMULATED".into(), "1".into()));
        }
        let identity = ReplicaLabels {
            pool: self.pool_name.to_string(),
            index: self.index,
            spec_hash: hash,
            engine_version: self.engine.version.clone(),
            gpus: self.gpus.to_vec(),
            gpus_simulated: self.gpus_simulated,
        };
        ContainerSpec {
            name: container_name(&identity, self.instance, suffix),
            // For a process the "image" is its executable: events and logs name it.
            image: executable
                .clone()
                .or_else(|| self.engine.image.clone())
                .unwrap_or_default(),
            mounts: match executable {
                Some(_) => Vec::new(),
                None => vec![Mount {
                    host_path: self.model_path.display().to_string(),
                    container_path: model_in,
                    read_only: true,
                }],
            },
            launch: executable.map_or(Launch::Image, Launch::Executable),
            args,
            env,
            labels: identity.to_labels(self.instance),
            container_port: self.engine.port,
            gpus: if self.gpus_simulated {
                GpuAttachment::Simulated(self.gpus.to_vec())
            } else {
                GpuAttachment::Nvidia(self.gpus.to_vec())
            },
        }
    }
}

/// What an Engine's placeholders stand for in one place the engine runs (a container here, a
/// process, a Kubernetes pod): everything but `{slots}` and `{tensor_split}`, which come from
/// the Pool.
#[derive(Clone, Copy, Debug)]
pub struct Placeholders<'a> {
    /// `{model_path}`: the model file as the engine sees it.
    pub model_path: &'a str,
    /// `{port}`: the port it listens on (`{port}` itself for a process, filled at spawn).
    pub port: &'a str,
    /// `{ctx_size}`: [`PoolSpec::effective_ctx`].
    pub ctx_size: u32,
    /// `{host}`: the address it binds.
    pub host: &'a str,
}

/// The engine's command line for a replica of `pool`: `args` then `extraArgs`, every
/// placeholder filled (`{tensor_split}` as [`with_tensor_split`] says). The one place the
/// placeholders are expanded.
pub fn engine_args(engine: &EngineSpec, pool: &PoolSpec, values: &Placeholders<'_>) -> Vec<String> {
    let fill = |arg: &String| {
        arg.replace("{model_path}", values.model_path)
            .replace("{port}", values.port)
            .replace("{ctx_size}", &values.ctx_size.to_string())
            .replace("{slots}", &pool.slots_per_replica.to_string())
            .replace("{host}", values.host)
    };
    let split = pool
        .tensor_split
        .as_ref()
        .map(|w| w.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
    with_tensor_split(engine.args.iter().chain(&engine.extra_args), split.as_deref())
        .iter()
        .map(fill)
        .collect()
}

/// Fills `{tensor_split}` with the Pool's weights (`2,1`), or — when the Pool sets none — drops
/// each argument that uses it together with the flag just before it (`--tensor-split`), so an
/// Engine can carry the flag for the Pools that split and stay valid for those that do not.
pub fn with_tensor_split<'a>(args: impl Iterator<Item = &'a String>, split: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for arg in args {
        if !arg.contains("{tensor_split}") {
            out.push(arg.clone());
            continue;
        }
        match split {
            Some(s) => out.push(arg.replace("{tensor_split}", s)),
            None if !arg.starts_with('-') && out.last().is_some_and(|p| p.starts_with('-')) => {
                out.pop();
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use llorch_manifests::identity;
    use llorch_manifests::{Engine, Model, Pool};

    fn objects() -> (Engine, Model, Pool) {
        let e: Engine = serde_json::from_value(serde_json::json!({
            "apiVersion": "llama-orch.dev/v1alpha1", "kind": "Engine", "metadata": {"name": "mock"},
            "spec": {"image": "img:dev", "version": "1", "env": {"A": "b"}}
        }))
        .unwrap();
        let m: Model = serde_json::from_value(serde_json::json!({
            "apiVersion": "llama-orch.dev/v1alpha1", "kind": "Model", "metadata": {"name": "tiny"},
            "spec": {"ref": "file:/m/tiny.gguf", "ctxMax": 4096}
        }))
        .unwrap();
        let p: Pool = serde_json::from_value(serde_json::json!({
            "apiVersion": "llama-orch.dev/v1alpha1", "kind": "Pool", "metadata": {"name": "chat"},
            "spec": {"engine": "mock", "model": "tiny", "replicas": 2, "slotsPerReplica": 3}
        }))
        .unwrap();
        (e, m, p)
    }

    #[test]
    fn container_spec_fills_placeholders_labels_mount_and_gpu_env() {
        let (e, m, p) = objects();
        let inputs = ReplicaInputs {
            instance: "t",
            pool_name: "chat",
            pool: &p.spec,
            engine: &e.spec,
            model: &m.spec,
            model_path: Path::new("/m/tiny.gguf"),
            index: 1,
            gpus: &[1],
            gpus_simulated: true,
        };
        let spec = inputs.container_spec("x");
        assert_eq!(
            spec.args,
            [
                "--model",
                "/models/tiny.gguf",
                "--host",
                "0.0.0.0",
                "--port",
                "8080",
                "--ctx-size",
                "4096",
                "--parallel",
                "3"
            ]
        );
        assert_eq!(spec.labels[identity::REPLICA_KEY], "1");
        assert_eq!(spec.labels[identity::SPEC_HASH_KEY], inputs.spec_hash());
        assert_eq!(spec.labels[identity::GPUS_SIMULATED_KEY], "true");
        assert_eq!(spec.labels[identity::OWNER_KEY], "llama-orch");
        assert_eq!(spec.labels[identity::INSTANCE_KEY], "t");
        assert_eq!(spec.labels[identity::POOL_KEY], "chat");
        assert_eq!(spec.labels[identity::ENGINE_VERSION_KEY], "1");
        assert_eq!(spec.labels[identity::GPUS_KEY], "1");
        assert_eq!(spec.labels.len(), 8, "{:?}", spec.labels);
        // Byte for byte the name containers had before: an upgrade adopts them.
        assert_eq!(spec.name, format!("llorch-t-chat-1-{}-x", &inputs.spec_hash()[..6]));
        assert!(
            spec.env.contains(&("NVIDIA_VISIBLE_DEVICES".into(), "1".into())),
            "host device"
        );
        assert!(
            spec.env.contains(&("CUDA_VISIBLE_DEVICES".into(), "0".into())),
            "renumbered inside"
        );
        assert!(spec.env.contains(&("A".into(), "b".into())));
        assert_eq!(spec.gpus, GpuAttachment::Simulated(vec![1]));
        assert!(spec.mounts[0].read_only);
        assert_eq!(spec.mounts[0].container_path, "/models/tiny.gguf");
    }

    #[test]
    fn a_binary_engine_runs_the_executable_on_loopback_with_the_host_model_path() {
        let (mut e, m, p) = objects();
        e.spec.image = None;
        e.spec.provisioning = llorch_manifests::Provisioning::Binary;
        e.spec.executable = Some("/opt/llama/llama-server".into());
        let inputs = ReplicaInputs {
            instance: "t",
            pool_name: "chat",
            pool: &p.spec,
            engine: &e.spec,
            model: &m.spec,
            model_path: Path::new("/m/tiny.gguf"),
            index: 0,
            gpus: &[1],
            gpus_simulated: false,
        };
        let spec = inputs.container_spec("x");
        assert_eq!(spec.launch, Launch::Executable("/opt/llama/llama-server".into()));
        assert_eq!(
            spec.args[..6],
            ["--model", "/m/tiny.gguf", "--host", "127.0.0.1", "--port", "{port}"]
        );
        assert!(spec.mounts.is_empty(), "no container, no mount");
        assert!(
            spec.env.contains(&("CUDA_VISIBLE_DEVICES".into(), "1".into())),
            "host index"
        );
        assert_eq!(spec.gpus, GpuAttachment::Nvidia(vec![1]));
    }

    #[test]
    fn spec_hash_ignores_replica_count_but_not_slots() {
        let (e, m, mut p) = objects();
        let hash = |p: &PoolSpec| {
            ReplicaInputs {
                instance: "t",
                pool_name: "chat",
                pool: p,
                engine: &e.spec,
                model: &m.spec,
                model_path: Path::new("/m/tiny.gguf"),
                index: 0,
                gpus: &[0],
                gpus_simulated: true,
            }
            .spec_hash()
        };
        let before = hash(&p.spec);
        p.spec.replicas = Some(1);
        p.spec.queue.capacity = 3;
        assert_eq!(hash(&p.spec), before);
        p.spec.slots_per_replica = 4;
        assert_ne!(hash(&p.spec), before);
    }

    #[test]
    fn tensor_split_is_filled_or_dropped_with_its_flag() {
        let args: Vec<String> = ["--model", "m", "--tensor-split", "{tensor_split}", "--split-mode=row"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            with_tensor_split(args.iter(), Some("2,1")),
            ["--model", "m", "--tensor-split", "2,1", "--split-mode=row"]
        );
        assert_eq!(
            with_tensor_split(args.iter(), None),
            ["--model", "m", "--split-mode=row"]
        );
        let inline: Vec<String> = vec!["-ts={tensor_split}".into(), "--x".into()];
        assert_eq!(with_tensor_split(inline.iter(), None), ["--x"]);
        assert_eq!(with_tensor_split(inline.iter(), Some("3,1")), ["-ts=3,1", "--x"]);
    }

    #[test]
    fn tensor_split_is_in_the_hash_only_when_set() {
        let (mut e, m, mut p) = objects();
        e.spec.extra_args = vec!["--tensor-split".into(), "{tensor_split}".into()];
        p.spec.gpus_per_replica = 2;
        let inputs = |p: &PoolSpec| {
            let ri = ReplicaInputs {
                instance: "t",
                pool_name: "chat",
                pool: p,
                engine: &e.spec,
                model: &m.spec,
                model_path: Path::new("/m/tiny.gguf"),
                index: 0,
                gpus: &[0, 1],
                gpus_simulated: true,
            };
            (ri.spec_hash(), ri.container_spec("x").args)
        };
        let (unset, args) = inputs(&p.spec);
        assert!(!args.iter().any(|a| a.contains("tensor")), "{args:?}");
        p.spec.tensor_split = Some(vec![2, 1]);
        let (two_one, args) = inputs(&p.spec);
        assert_eq!(args[args.len() - 2..], ["--tensor-split", "2,1"]);
        p.spec.tensor_split = Some(vec![1, 1]);
        let (one_one, _) = inputs(&p.spec);
        assert!(unset != two_one && two_one != one_one);
        // Unset serializes nothing: hashes of Pools without a split did not change.
        let hash_inputs = serde_json::to_value(HashInputs {
            engine: &e.spec,
            model_path: Path::new("/m"),
            model_digest: &None,
            ctx_size: 1,
            slots: 1,
            gpus: &[0],
            gpus_simulated: true,
            tensor_split: None,
        })
        .unwrap();
        assert!(hash_inputs.get("tensor_split").is_none());
    }
}
