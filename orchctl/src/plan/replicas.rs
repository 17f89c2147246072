//! The replicas section of a plan: the GPUs, where each replica goes — placed by the daemon's
//! own planner (`llorch_controller::placement::plan`, one ledger with every other Pool, sticky
//! GPUs for replicas that run) or refused with the daemon's sentence — and the exact container
//! or process each placed replica would be (`spec::ReplicaInputs`, the daemon's own).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use llorch_controller::placement::{self, Placement, refusal, vram};
use llorch_controller::provision::plan::{EnginePlan, RunAs};
use llorch_controller::runtime::{ContainerSpec, GpuAttachment, Launch};
use llorch_controller::spec::ReplicaInputs;
use llorch_manifests::api::GpuView;
use llorch_manifests::pool::{AllGpus, GpuSelector};
use llorch_manifests::secrets::{self, EnvValue};
use llorch_manifests::units::gib;
use llorch_manifests::{Blocked, Engine, Pool};

use super::{GpuSource, NAME_SUFFIX, PlanInput, engine, model};

/// The replicas section.
pub fn lines(
    out: &mut String,
    unknown: &mut Vec<String>,
    input: &PlanInput,
    pool: &Pool,
    engine: &Engine,
    plan: &EnginePlan,
    model_path: Option<&Path>,
) {
    let sized;
    let pool = match &pool.spec.scaling {
        // Planned as it runs at its busiest.
        Some(scaling) => {
            let _ = writeln!(
                out,
                "\nreplicas: {}–{} by demand (idle timeout {}); planned at {}",
                scaling.min_replicas, scaling.max_replicas, scaling.idle_timeout, scaling.max_replicas
            );
            sized = Pool {
                spec: pool.spec.sized(scaling.max_replicas),
                ..pool.clone()
            };
            &sized
        }
        None => {
            let _ = writeln!(out, "\nreplicas: {}", pool.spec.replica_count());
            pool
        }
    };
    if let RunAs::Attach(url) = &plan.run {
        let _ = writeln!(out, "  replica 0: the external engine at {url} (nothing is created)");
        return;
    }
    let Some(placements) = place(out, unknown, input, pool) else {
        return;
    };
    let launched = engine::launched(engine, plan);
    let model_path = model_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("<model file>"));
    let Some((model, _)) = &input.model else { return };
    let (demand, need) = model::demand(input, pool);
    for index in 0..pool.spec.replica_count() {
        let gpus = match placements.get(index as usize) {
            Some(Ok(g)) => g,
            Some(Err(why)) => {
                let _ = writeln!(out, "  replica {index}: cannot be placed: {why}");
                continue;
            }
            None => continue,
        };
        let spec = ReplicaInputs {
            instance: &input.config.instance,
            pool_name: pool.name(),
            pool: &pool.spec,
            engine: &launched.spec,
            model: &model.spec,
            model_path: &model_path,
            index,
            gpus,
            gpus_simulated: input.gpus.simulated(),
        }
        .container_spec(NAME_SUFFIX);
        spec_lines(out, index, &spec, &launched.spec.env);
        let shares = vram::shares(demand.need, gpus.len(), demand.tensor_split.as_deref());
        let on: Vec<String> = gpus
            .iter()
            .zip(&shares)
            .map(|(g, s)| format!("{} on GPU {g}", gib(*s)))
            .collect();
        let kept = input
            .existing
            .iter()
            .any(|e| e.pool == pool.name() && e.index == index && e.running && &e.gpus == gpus);
        let _ = writeln!(
            out,
            "    vram: {}{}",
            if need.source == vram::SOURCE_UNKNOWN {
                "need unknown, placed as 0 bytes".to_string()
            } else {
                on.join(" + ")
            },
            if kept {
                " (kept: its container already runs there)"
            } else {
                ""
            }
        );
    }
}

/// The GPU lines, then every replica's placement in index order — or `None`, with the reason
/// written out, when nothing can be placed.
fn place(out: &mut String, unknown: &mut Vec<String>, input: &PlanInput, pool: &Pool) -> Option<Vec<Placement>> {
    if input.gpus == GpuSource::NoGpus {
        let why = Blocked::NoGpus {
            engine: pool.spec.engine.clone(),
            provisioning: input.engine.as_ref().map(|e| e.spec.provisioning).unwrap_or_default(),
        };
        let _ = writeln!(out, "  GPUs: {}", input.gpus.describe());
        let _ = writeln!(out, "  not placed: the daemon blocks this Pool: {why}");
        return None;
    }
    let (Some(devices), Some(reported)) = (input.gpus.for_planner(), input.gpus.reported()) else {
        let why = match &input.gpus {
            GpuSource::Unknown(why) => why.as_str(),
            _ => "",
        };
        let _ = writeln!(
            out,
            "  GPUs: unknown — the daemon did not answer and NVML could not be read here ({why})"
        );
        let _ = writeln!(
            out,
            "  spec.gpus: {}, gpusPerReplica {}: no replica is placed without an inventory",
            mask_text(&pool.spec.gpus),
            pool.spec.gpus_per_replica
        );
        unknown.push("which GPUs exist and what they have free (start the daemon, or run `orchctl doctor`)".into());
        return None;
    };
    let _ = writeln!(out, "  GPUs: {}", input.gpus.describe());
    for d in reported {
        let _ = writeln!(out, "    {}", device_line(d));
    }
    let (demand, _) = model::demand(input, pool);
    if let Err(why) = blocked(&devices, &demand.mask, demand.gpus_per_replica) {
        let _ = writeln!(out, "  not placed: the daemon blocks this Pool: {why}");
        return None;
    }
    let mut demands = input.others.clone();
    demands.push(demand);
    let plan = placement::plan(&devices, input.gpus.accounting(), &input.existing, &demands);
    let decided = plan.pools.get(pool.name());
    let placements = (0..pool.spec.replica_count())
        .map(|i| {
            decided
                .and_then(|m| m.get(&i).cloned())
                .unwrap_or_else(|| Err("not placed".into()))
        })
        .collect();
    let reserved: Vec<String> = devices
        .iter()
        .map(|d| {
            format!(
                "GPU {} {}",
                d.index,
                gib(plan.reserved.get(&d.index).copied().unwrap_or(0))
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "  reserved by llama-orch's replicas once placed: {}",
        reserved.join(", ")
    );
    Some(placements)
}

/// The daemon's reasons not to reconcile a Pool at all, for its GPU mask (the daemon's
/// `serving::resolve`): a GPU that does not exist, or fewer GPUs than `gpusPerReplica`.
pub fn blocked(devices: &[GpuView], mask: &[u32], per_replica: u32) -> Result<(), placement::MaskProblem> {
    placement::mask_problem(devices, mask, per_replica)
}

fn device_line(d: &GpuView) -> String {
    let health = if d.errors.is_empty() {
        String::new()
    } else {
        format!("; UNHEALTHY, never chosen: {}", d.errors.join("; "))
    };
    format!("{}: {} free{health}", refusal::device_name(d), gib(d.free_bytes))
}

fn mask_text(selector: &GpuSelector) -> String {
    match selector {
        GpuSelector::Keyword(AllGpus::All) => "all".into(),
        GpuSelector::Devices(d) => format!("{d:?}"),
    }
}

fn spec_lines(out: &mut String, index: u32, spec: &ContainerSpec, declared: &BTreeMap<String, EnvValue>) {
    match &spec.launch {
        Launch::Image => {
            let _ = writeln!(out, "  replica {index}: container {}", spec.name);
            let _ = writeln!(out, "    image: {}", spec.image);
            let _ = writeln!(
                out,
                "    port: {} published on 127.0.0.1 at a free port",
                spec.container_port
            );
        }
        Launch::Executable(exe) => {
            let _ = writeln!(out, "  replica {index}: process {}", spec.name);
            let _ = writeln!(out, "    executable: {exe}");
            let _ = writeln!(out, "    port: {{port}} = a free 127.0.0.1 port picked at start");
        }
    }
    let args: Vec<String> = spec
        .args
        .iter()
        .map(|a| llorch_controller::provision::plan::quote(a))
        .collect();
    let _ = writeln!(out, "    args: {}", args.join(" "));
    // The declared variables as the manifest may show them (`valueFrom` values and
    // secret-looking names redacted; `valueFrom` is read by the daemon, not here), then the
    // ones llama-orch adds.
    let mut env: Vec<String> = declared.iter().map(|(k, v)| format!("{k}={}", v.shown(k))).collect();
    env.extend(spec.env.iter().filter(|(k, _)| !declared.contains_key(k)).map(
        |(k, v)| match secrets::is_secret_name(k) {
            true => format!("{k}={}", secrets::REDACTED),
            false => format!("{k}={v}"),
        },
    ));
    let _ = writeln!(out, "    env: {}", env.join(" "));
    for m in &spec.mounts {
        let _ = writeln!(
            out,
            "    mount: {} -> {}{}",
            m.host_path,
            m.container_path,
            if m.read_only { " (read-only)" } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "    gpus: {}",
        match &spec.gpus {
            GpuAttachment::None => "none".to_string(),
            GpuAttachment::Simulated(g) => format!("SIMULATED {g:?}: environment only, no device"),
            GpuAttachment::Nvidia(g) if matches!(spec.launch, Launch::Executable(_)) => {
                format!("NVIDIA {g:?}: a process sees the host's devices; CUDA_VISIBLE_DEVICES selects them")
            }
            GpuAttachment::Nvidia(g) => format!(
                "NVIDIA {g:?}: Docker device request (driver nvidia, ids {}), Podman CDI {}",
                g.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                g.iter()
                    .map(|i| format!("nvidia.com/gpu={i}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    );
}
