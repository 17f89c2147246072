//! How a Model's file reaches a pod at `/models/<file>`, where the engine's `{model_path}`
//! points (as in llama-orch's containers):
//! - a remote `ref` (`hf:org/repo/file`, `https://…`): an init container downloads it into an
//!   `emptyDir` and checks the Model's `digest` before the engine starts — the same check the
//!   daemon makes;
//! - a `file:` ref: a PersistentVolumeClaim `llorch-model-<model>` the user fills with that file
//!   (docs/kubernetes.md says how), mounted read-only; an init container checks the digest.
//!
//! The init container runs one fixed script; what it fetches and checks comes in environment
//! variables, so nothing from a manifest is ever spliced into shell code.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, SecretKeySelector, SecurityContext, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use llorch_controller::catalog::hf;
use llorch_controller::spec::MODEL_DIR_IN_CONTAINER;
use llorch_manifests::Model;
use llorch_manifests::model::ModelRef;

use super::names::{self, Labels};
use super::refusal::Unexportable;

/// The pod volume that holds the model.
pub const VOLUME: &str = "model";

/// The image the init container runs: curl and a POSIX shell with `sha256sum` (busybox).
pub const DEFAULT_FETCH_IMAGE: &str = "curlimages/curl:8.16.0";

/// The init container's script. Inputs: `MODEL_DIR`, `MODEL_FILE`, `MODEL_URL` (empty: the
/// file is already there), `MODEL_SHA256` (empty: no check), `HF_TOKEN` (sent as a bearer
/// token when set; only for Hugging Face URLs).
pub const FETCH_SCRIPT: &str = r#"set -eu
dest="$MODEL_DIR/$MODEL_FILE"
src="$dest"
if [ -n "${MODEL_URL:-}" ]; then
  src="$dest.part"
  set --
  if [ -n "${HF_TOKEN:-}" ]; then set -- -H "Authorization: Bearer $HF_TOKEN"; fi
  echo "llama-orch: downloading $MODEL_FILE"
  curl -fSL --retry 5 --retry-all-errors --connect-timeout 30 "$@" -o "$src" "$MODEL_URL"
fi
if [ ! -f "$src" ]; then
  echo "llama-orch: $src does not exist: put the Model's file on its volume (docs/kubernetes.md)" >&2
  exit 1
fi
if [ -n "${MODEL_SHA256:-}" ]; then
  echo "llama-orch: checking sha256:$MODEL_SHA256"
  if ! echo "$MODEL_SHA256  $src" | sha256sum -c - >/dev/null; then
    echo "llama-orch: $MODEL_FILE does not match the Model's digest sha256:$MODEL_SHA256" >&2
    exit 1
  fi
fi
if [ "$src" != "$dest" ]; then mv "$src" "$dest"; fi
echo "llama-orch: $MODEL_FILE is ready"
"#;

/// Where a Model's file comes from in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// Downloaded by the init container.
    Download {
        /// The URL.
        url: String,
        /// True for the Hugging Face Hub (the optional token is sent there only).
        hub: bool,
    },
    /// Placed by the user on a claim.
    Claim,
}

/// What a pod needs for its model.
#[derive(Clone, Debug)]
pub struct ModelVolume {
    /// The file name under `/models`.
    pub file: String,
    /// Where it comes from.
    pub source: ModelSource,
    /// The digest's hex, when the Model declares one.
    pub sha256: Option<String>,
}

impl ModelVolume {
    /// Reads `model`'s `ref`; refuses what a cluster cannot reach.
    pub fn of(model: &Model) -> Result<ModelVolume, Unexportable> {
        let refused = || Unexportable::UnresolvedModel {
            model: model.name().to_string(),
            reference: model.spec.reference.clone(),
        };
        let parsed = model.spec.parse_ref().map_err(|_| refused())?;
        let (file, source) = match parsed {
            ModelRef::File(path) => (base_name(path), ModelSource::Claim),
            ModelRef::Hf { repo, file: Some(file) } => {
                let url = hf::file_url(hf::HUB, repo, file).map_err(|_| refused())?;
                (
                    base_name(file),
                    ModelSource::Download {
                        url: url.to_string(),
                        hub: true,
                    },
                )
            }
            ModelRef::Hf { file: None, .. } => return Err(refused()),
            ModelRef::Url { url, tls, .. } => {
                if !tls {
                    return Err(Unexportable::LoopbackModel {
                        model: model.name().to_string(),
                        url: url.to_string(),
                    });
                }
                let path = url.split(['?', '#']).next().unwrap_or(url);
                (
                    base_name(path),
                    ModelSource::Download {
                        url: url.to_string(),
                        hub: url
                            .split("://")
                            .nth(1)
                            .and_then(|rest| rest.split(['/', ':']).next())
                            .is_some_and(hf::is_hub_host),
                    },
                )
            }
        };
        Ok(ModelVolume {
            file,
            source,
            sha256: model
                .spec
                .digest
                .as_deref()
                .and_then(|d| d.strip_prefix("sha256:"))
                .map(str::to_string),
        })
    }

    /// The model file as the engine sees it.
    pub fn path_in_container(&self) -> String {
        format!("{MODEL_DIR_IN_CONTAINER}/{}", self.file)
    }

    /// The pod volume: an `emptyDir` for a download, the claim otherwise.
    pub fn volume(&self, model: &str) -> Volume {
        match self.source {
            ModelSource::Download { .. } => Volume {
                name: VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
            ModelSource::Claim => Volume {
                name: VOLUME.into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: names::model_claim(model),
                    read_only: Some(true),
                }),
                ..Volume::default()
            },
        }
    }

    /// The engine's mount: read-only at `/models`.
    pub fn engine_mount(&self) -> VolumeMount {
        VolumeMount {
            name: VOLUME.into(),
            mount_path: MODEL_DIR_IN_CONTAINER.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        }
    }

    /// The init container: downloads (and checks) a remote file; checks a placed one when the
    /// Model has a digest. None for a placed file without a digest.
    pub fn init_container(&self, image: &str) -> Option<Container> {
        let (url, hub) = match &self.source {
            ModelSource::Download { url, hub } => (url.as_str(), *hub),
            ModelSource::Claim if self.sha256.is_some() => ("", false),
            ModelSource::Claim => return None,
        };
        let plain = |name: &str, value: &str| EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..EnvVar::default()
        };
        let mut env = vec![
            plain("MODEL_DIR", MODEL_DIR_IN_CONTAINER),
            plain("MODEL_FILE", &self.file),
            plain("MODEL_URL", url),
            plain("MODEL_SHA256", self.sha256.as_deref().unwrap_or_default()),
        ];
        if hub {
            env.push(EnvVar {
                name: llorch_manifests::config::HF_TOKEN_ENV.into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: names::HF_TOKEN_SECRET.into(),
                        key: "token".into(),
                        optional: Some(true),
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            });
        }
        Some(Container {
            name: if url.is_empty() { "verify-model" } else { "fetch-model" }.into(),
            image: Some(image.into()),
            command: Some(vec!["/bin/sh".into(), "-c".into(), FETCH_SCRIPT.into()]),
            env: Some(env),
            volume_mounts: Some(vec![VolumeMount {
                name: VOLUME.into(),
                mount_path: MODEL_DIR_IN_CONTAINER.into(),
                read_only: Some(url.is_empty()),
                ..VolumeMount::default()
            }]),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    ..Capabilities::default()
                }),
                ..SecurityContext::default()
            }),
            ..Container::default()
        })
    }

    /// The claim to create for a placed file, sized from the file when export could read it
    /// (`bytes`), else 1 GiB (a guess the command says so about). `ReadWriteOnce` for one
    /// replica, `ReadWriteMany` for more (their pods may land on several nodes); writable so a
    /// helper pod can copy the file in, mounted read-only by the engines.
    pub fn claim(
        &self,
        model: &str,
        namespace: Option<&str>,
        labels: &Labels,
        bytes: Option<u64>,
        replicas: u32,
    ) -> Option<PersistentVolumeClaim> {
        if self.source != ModelSource::Claim {
            return None;
        }
        Some(PersistentVolumeClaim {
            metadata: names::meta(&names::model_claim(model), namespace, labels, BTreeMap::new()),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec![
                    if replicas > 1 { "ReadWriteMany" } else { "ReadWriteOnce" }.into(),
                ]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity(format!("{}Gi", claim_gib(bytes))),
                    )])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        })
    }
}

/// Whole GiB for a file of `bytes` with 5 % to spare; 1 when unknown.
pub fn claim_gib(bytes: Option<u64>) -> u64 {
    bytes.map_or(1, |b| (b + b / 20).div_ceil(1 << 30).max(1))
}

fn base_name(path: &str) -> String {
    path.rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("model")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(reference: &str, digest: Option<&str>) -> Model {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "llama-orch.dev/v1alpha1", "kind": "Model", "metadata": {"name": "m"},
            "spec": {"ref": reference, "ctxMax": 4096, "digest": digest}
        }))
        .unwrap()
    }

    #[test]
    fn a_hub_file_is_downloaded_from_the_hub_with_the_optional_token() {
        let v = ModelVolume::of(&model(
            "hf:org/repo/sub/m.Q4.gguf",
            Some(&format!("sha256:{}", "a".repeat(64))),
        ))
        .unwrap();
        assert_eq!(v.file, "m.Q4.gguf");
        assert_eq!(v.path_in_container(), "/models/m.Q4.gguf");
        assert_eq!(
            v.source,
            ModelSource::Download {
                url: "https://huggingface.co/org/repo/resolve/main/sub/m.Q4.gguf".into(),
                hub: true
            }
        );
        let init = v.init_container(DEFAULT_FETCH_IMAGE).unwrap();
        let env = init.env.unwrap();
        assert!(env.iter().any(|e| e.name == "HF_TOKEN" && e.value.is_none()));
        assert!(
            env.iter()
                .any(|e| e.name == "MODEL_SHA256" && e.value.as_deref() == Some(&*"a".repeat(64)))
        );
        assert!(v.claim("m", None, &Labels::default(), None, 1).is_none());
    }

    #[test]
    fn a_plain_https_file_gets_no_token() {
        let v = ModelVolume::of(&model("https://example.com/x/m.gguf?download=1", None)).unwrap();
        assert_eq!(v.file, "m.gguf");
        let env = v.init_container(DEFAULT_FETCH_IMAGE).unwrap().env.unwrap();
        assert!(env.iter().all(|e| e.name != "HF_TOKEN"));
    }

    #[test]
    fn a_local_file_is_a_claim_checked_only_with_a_digest() {
        let v = ModelVolume::of(&model("file:/srv/models/tiny.gguf", None)).unwrap();
        assert_eq!(v.source, ModelSource::Claim);
        assert!(v.init_container(DEFAULT_FETCH_IMAGE).is_none());
        let claim = v
            .claim("tiny", Some("ai"), &Labels::default(), Some(5 << 30), 2)
            .unwrap();
        assert_eq!(
            claim.spec.as_ref().unwrap().access_modes.as_deref(),
            Some(&["ReadWriteMany".to_string()][..])
        );
        assert_eq!(claim.metadata.name.as_deref(), Some("llorch-model-tiny"));
        let storage = &claim.spec.unwrap().resources.unwrap().requests.unwrap()["storage"];
        assert_eq!(storage.0, "6Gi");
        let checked = ModelVolume::of(&model(
            "file:/srv/tiny.gguf",
            Some(&format!("sha256:{}", "b".repeat(64))),
        ))
        .unwrap();
        let init = checked.init_container(DEFAULT_FETCH_IMAGE).unwrap();
        assert_eq!(init.name, "verify-model");
        assert_eq!(init.volume_mounts.unwrap()[0].read_only, Some(true));
    }

    #[test]
    fn what_a_cluster_cannot_reach_is_refused() {
        assert!(matches!(
            ModelVolume::of(&model("hf:org/repo", None)),
            Err(Unexportable::UnresolvedModel { .. })
        ));
        assert!(matches!(
            ModelVolume::of(&model("http://127.0.0.1:9/m.gguf", None)),
            Err(Unexportable::LoopbackModel { .. })
        ));
    }

    #[test]
    fn claims_are_sized_in_whole_gib_with_room() {
        assert_eq!(claim_gib(None), 1);
        assert_eq!(claim_gib(Some(43_000)), 1);
        assert_eq!(claim_gib(Some(4_683_073_920)), 5);
    }
}
