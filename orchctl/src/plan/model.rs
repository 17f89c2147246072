//! The model section of a plan — reference, resolved file, download policy and cache, digest
//! check — and the VRAM one replica needs. The need is the daemon's own arithmetic
//! (`placement::memory::demand`): `spec.vramBytes`, else the Model's GGUF figures at the Pool's
//! context and slots. The figures come from the daemon's `status.model.vram` when it has them
//! for this very manifest, else from the GGUF header read here ([`Figures::read`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use llorch_controller::placement::{PoolDemand, memory, vram};
use llorch_manifests::api::{ObjectView, Snapshot};
use llorch_manifests::model::ModelRef;
use llorch_manifests::status::{ModelVram, PoolVram};
use llorch_manifests::{AnyObject, Kind, Model, ObjectRef, Pool, Provisioning};

use super::PlanInput;

/// A Model's VRAM figures (`status.model.vram`) and where they came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Figures {
    /// `spec.vramBytes` is set: it is the whole need, no figures are read.
    Override,
    /// The daemon's `status.model.vram` for the same manifest.
    Daemon(ModelVram),
    /// The GGUF header of this file, read here.
    Header(ModelVram, PathBuf),
    /// Not known: why.
    Unknown(String),
}

impl Figures {
    /// The figures `model` (declared in `file`) is sized from: the daemon's when its manifest
    /// is this one, else the GGUF header of its file (a `file:` ref, or the file the daemon
    /// fetched), read here.
    pub fn read(model: &Model, file: &Path, snapshot: Option<&Snapshot>) -> Figures {
        if model.spec.vram_bytes.is_some() {
            return Figures::Override;
        }
        let view = snapshot.and_then(|s| {
            s.objects
                .iter()
                .find(|o| o.object == ObjectRef::new(Kind::Model, model.name()))
        });
        let same = |o: &&ObjectView| o.manifest.as_ref() == Some(&AnyObject::Model(model.clone()).to_json());
        let state = view.filter(same).and_then(|o| o.status.model.as_ref());
        if let Some(v) = state.and_then(|m| m.vram.clone()) {
            return Figures::Daemon(v);
        }
        let path = match model.spec.parse_ref() {
            Ok(ModelRef::File(p)) => Some(local_path(file, p)),
            _ => state.and_then(|m| m.path.as_ref()).map(PathBuf::from),
        };
        let Some(path) = path else {
            return Figures::Unknown("the model file is not fetched yet".into());
        };
        match llorch_gguf::read_summary(&path) {
            Ok(s) => Figures::Header(
                ModelVram {
                    source: "gguf".into(),
                    weights_bytes: s.tensor_bytes,
                    kv_bytes_per_token: s.kv_bytes_per_token(),
                },
                path,
            ),
            Err(e) => Figures::Unknown(format!("its GGUF header could not be read here: {e}")),
        }
    }

    /// The figures, when there are any.
    pub fn vram(&self) -> Option<&ModelVram> {
        match self {
            Figures::Daemon(v) | Figures::Header(v, _) => Some(v),
            Figures::Override | Figures::Unknown(_) => None,
        }
    }
}

/// A `file:` ref's path: absolute, or relative to the manifest's directory.
pub fn local_path(manifest: &Path, reference: &str) -> PathBuf {
    manifest.parent().unwrap_or(Path::new("/")).join(reference)
}

/// What the Pool asks of the GPUs and its VRAM breakdown, as the daemon computes them.
pub fn demand(input: &PlanInput, pool: &Pool) -> (PoolDemand, PoolVram) {
    let devices = input.gpus.for_planner().unwrap_or_default();
    let model = input.model.as_ref().map(|(m, _)| m);
    memory::demand(pool, model, input.figures.vram(), &devices, true)
}

/// The model section; returns the model file engines are given, when known.
pub fn lines(out: &mut String, unknown: &mut Vec<String>, input: &PlanInput, pool: &Pool) -> Option<PathBuf> {
    let _ = writeln!(out, "\nmodel {}", pool.spec.model);
    if input
        .engine
        .as_ref()
        .is_some_and(|e| e.spec.provisioning == Provisioning::External)
    {
        // The daemon neither fetches nor sizes it (controller `models/usage.rs`).
        if let Some((m, _)) = &input.model {
            let _ = writeln!(out, "  ref: {}", m.spec.reference);
        }
        let _ = writeln!(
            out,
            "  not fetched here: the external engine loads its own weights (no file, no digest check, no VRAM need)"
        );
        return None;
    }
    let path = match &input.model {
        None => {
            let _ = writeln!(out, "  MISSING: Model `{}` is not declared", pool.spec.model);
            None
        }
        Some((m, file)) => model_lines(out, unknown, input, m, file),
    };
    vram_line(out, unknown, input, pool);
    path
}

fn vram_line(out: &mut String, unknown: &mut Vec<String>, input: &PlanInput, pool: &Pool) {
    let Some((m, _)) = &input.model else {
        let _ = writeln!(out, "  VRAM per replica: unknown");
        unknown.push("the VRAM need (the Model is not declared)".into());
        return;
    };
    let (_, v) = demand(input, pool);
    if v.source == vram::SOURCE_UNKNOWN {
        let why = match &input.figures {
            Figures::Unknown(why) => why.clone(),
            _ => "no figures".into(),
        };
        let _ = writeln!(
            out,
            "  VRAM per replica: unknown ({why}); placed as needing 0 bytes, so replicas only spread"
        );
        unknown
            .push("the VRAM need (no GGUF figures: see the model above, or set the Model's `spec.vramBytes`)".into());
        return;
    }
    let origin = match &input.figures {
        Figures::Override => "spec.vramBytes".to_string(),
        Figures::Daemon(_) => format!("{}; figures from the daemon's model status", at(pool, m)),
        Figures::Header(_, path) => format!("{}; figures from the GGUF header of {}", at(pool, m), path.display()),
        Figures::Unknown(_) => "figures of unknown origin".into(),
    };
    let _ = writeln!(
        out,
        "  VRAM per replica: {} bytes ({}: weights {}, KV cache {}, overhead {}) — {origin}",
        v.per_replica_bytes, v.source, v.weights_bytes, v.kv_cache_bytes, v.overhead_bytes
    );
}

fn at(pool: &Pool, m: &Model) -> String {
    format!(
        "at ctxSize {}, {} slot(s)",
        pool.spec.effective_ctx(&m.spec),
        pool.spec.slots_per_replica
    )
}

fn model_lines(
    out: &mut String,
    unknown: &mut Vec<String>,
    input: &PlanInput,
    m: &Model,
    file: &Path,
) -> Option<PathBuf> {
    let _ = writeln!(out, "  ref: {}", m.spec.reference);
    let path = match m.spec.parse_ref() {
        Ok(ModelRef::File(p)) => {
            let path = local_path(file, p);
            let state = match std::fs::metadata(&path) {
                Ok(meta) => format!("present, {} bytes", meta.len()),
                Err(_) => "MISSING".to_string(),
            };
            let _ = writeln!(out, "  file: {} ({state}; a local file, not cached)", path.display());
            Some(path)
        }
        Ok(ModelRef::Url { url, host, .. }) => {
            let _ = writeln!(out, "  source: {url} (host {host})");
            remote_lines(out, unknown, input, host)
        }
        Ok(ModelRef::Hf { repo, file }) => {
            let _ = writeln!(
                out,
                "  source: Hugging Face repo {repo}, file {}",
                file.unwrap_or("(the repo's only .gguf)")
            );
            remote_lines(out, unknown, input, "huggingface.co")
        }
        Err(e) => {
            let _ = writeln!(out, "  INVALID: {e}");
            None
        }
    };
    let _ = writeln!(
        out,
        "  digest: {}",
        match &m.spec.digest {
            Some(d) => format!("{d}: verified before any replica starts; a mismatch fails the Model"),
            None => "none given: the file is not verified".to_string(),
        }
    );
    path
}

fn remote_lines(out: &mut String, unknown: &mut Vec<String>, input: &PlanInput, host: &str) -> Option<PathBuf> {
    let models = &input.config.models;
    let allowed = models
        .allow_hosts
        .iter()
        .any(|h| host == h || host.ends_with(&format!(".{h}")));
    let _ = writeln!(
        out,
        "  download: {}",
        match (models.downloads, allowed) {
            (false, _) => "refused (config `models.downloads: false`)".to_string(),
            (true, false) => format!("refused: `{host}` is not in config `models.allowHosts`"),
            (true, true) => format!("allowed, into the model cache {}", input.model_cache.display()),
        }
    );
    match input.model_status.as_ref().and_then(|s| s.path.clone()) {
        Some(p) => {
            let _ = writeln!(out, "  file: {p} (resolved by the daemon)");
            Some(PathBuf::from(p))
        }
        None => {
            let _ = writeln!(out, "  file: not fetched yet");
            unknown.push("the model file's final path (known once fetched)".into());
            None
        }
    }
}
