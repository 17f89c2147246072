//! Provisioning: whether each Engine can run on this host, and getting it there when the
//! policy allows (ORCH-3201..3207). Per mode: `container` — the image is present, or pulled
//! when `provisioning.allowImagePulls`; `external` — nothing to provision (its Pools probe the
//! URL); `binary` — the executable resolves; `source` / `package` — the binary exists, else the
//! deterministic plan (`plan`) runs in the background (`runner`) when its policy flag allows,
//! else the Engine is not Ready and says which plan and which flag. Long work (pulls, builds)
//! never blocks a reconcile pass: it runs in a task that wakes the loop when done.

pub mod os;
pub mod plan;
pub mod runner;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use llorch_manifests::config::ProvisioningPolicy;
use llorch_manifests::{AnyObject, Engine, EngineSpec, Kind, Provisioning, Reason};
use tokio::sync::Notify;

use crate::manifest_store::DesiredState;
use crate::runtime::ContainerRuntime;
use crate::runtime::process::resolve;
use os::OsRelease;
use plan::{EnginePlan, RunAs, engine_plan};

/// A failed pull is tried again after this long.
pub const PULL_RETRY: Duration = Duration::from_secs(60);

/// What the Engine check found.
#[derive(Clone, Debug)]
pub struct EngineCheck {
    /// `Ok(what serves)`, or what is missing and how to fix it.
    pub verdict: Result<String, NotReady>,
    /// For `source` / `package`: the Engine as it is launched once provisioned — `binary` mode
    /// with the built or installed executable. `None` until then.
    pub launch_as: Option<EngineSpec>,
}

/// Why an Engine cannot run here yet: the condition reason (`ImageMissing`, `Provisioning`, …)
/// and a sentence that says what is missing and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NotReady {
    /// The condition and event reason.
    pub reason: Reason,
    /// What is missing and how to fix it.
    pub message: String,
}

/// Why a Pool cannot launch its Engine's replicas ([`launchable`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotLaunchable {
    /// Its provisioning failed or is under way.
    #[error("Engine `{engine}` is not provisioned: {why}")]
    Unprovisioned {
        /// The Engine.
        engine: String,
        /// Its check's verdict.
        #[source]
        why: NotReady,
    },
    /// It has not been checked yet.
    #[error("Engine `{engine}` is not provisioned yet")]
    Unchecked {
        /// The Engine.
        engine: String,
    },
}

impl EngineCheck {
    fn ok(message: String) -> Self {
        EngineCheck {
            verdict: Ok(message),
            launch_as: None,
        }
    }

    fn not_ready(reason: Reason, message: String) -> Self {
        EngineCheck {
            verdict: Err(NotReady { reason, message }),
            launch_as: None,
        }
    }
}

#[derive(Clone, Debug)]
enum Job {
    Running(String),
    Done,
    Failed(String, Instant),
}

/// Checks Engines and runs what the policy allows.
pub struct Provisioner {
    policy: ProvisioningPolicy,
    engine_cache: PathBuf,
    os: OsRelease,
    jobs: Arc<Mutex<HashMap<String, Job>>>,
    wake: Arc<Notify>,
}

/// Whether config lets a `binary` Engine run `path`: `allowBinaries`, or the file (symlinks
/// resolved) is one of `allowedExecutables`.
pub fn binary_allowed(policy: &ProvisioningPolicy, path: &Path) -> bool {
    if policy.allow_binaries {
        return true;
    }
    let Ok(real) = path.canonicalize() else { return false };
    policy
        .allowed_executables
        .iter()
        .any(|allowed| allowed.canonicalize().is_ok_and(|a| a == real))
}

/// Why config does not let a `binary` Engine run `path`, in the words the controller and the
/// write API both use; `None` when it may.
pub fn binary_refusal(policy: &ProvisioningPolicy, path: &Path) -> Option<String> {
    (!binary_allowed(policy, path)).then(|| {
        format!(
            "a `binary` Engine runs a program as llama-orchd's user, and config \
             `provisioning.allowBinaries` is false: add {} to `provisioning.allowedExecutables` \
             (or set `allowBinaries: true`) in config.yaml",
            path.display()
        )
    })
}

/// `provisioning.engineCacheDir`, else `~/.cache/llama-orch/engines`.
pub fn engine_cache_dir(policy: &ProvisioningPolicy) -> PathBuf {
    policy.engine_cache_dir.clone().unwrap_or_else(|| {
        llorch_manifests::config::cache_root(
            std::env::var("XDG_CACHE_HOME").ok().as_deref(),
            std::env::var("HOME").ok().as_deref(),
        )
        .join("engines")
    })
}

/// The Engine as its replicas are launched: itself, or — for `source` / `package` — the
/// `binary` Engine its check produced once provisioned. `Err` while it is not provisioned.
pub fn launchable(engine: &Engine, check: Option<&EngineCheck>) -> Result<Engine, NotLaunchable> {
    match engine.spec.provisioning {
        Provisioning::Source | Provisioning::Package => match check {
            Some(EngineCheck {
                launch_as: Some(spec), ..
            }) => Ok(Engine {
                spec: spec.clone(),
                ..engine.clone()
            }),
            Some(EngineCheck { verdict: Err(why), .. }) => Err(NotLaunchable::Unprovisioned {
                engine: engine.name().to_string(),
                why: why.clone(),
            }),
            _ => Err(NotLaunchable::Unchecked {
                engine: engine.name().to_string(),
            }),
        },
        _ => Ok(engine.clone()),
    }
}

/// True when some declared Engine runs in a container (the daemon then needs Docker/Podman).
pub fn needs_container_runtime(desired: &DesiredState) -> bool {
    desired.of_kind(Kind::Engine).any(|e| match &e.object {
        AnyObject::Engine(engine) => engine.spec.provisioning == Provisioning::Container,
        _ => false,
    })
}

impl Provisioner {
    /// A provisioner under `policy` that wakes the loop through `wake` when background work ends.
    pub fn new(policy: ProvisioningPolicy, wake: Arc<Notify>) -> Self {
        Provisioner {
            engine_cache: engine_cache_dir(&policy),
            policy,
            os: OsRelease::read(),
            jobs: Arc::default(),
            wake,
        }
    }

    /// The same, with the engine cache and OS given (tests, `orchctl plan`).
    pub fn with_host(mut self, engine_cache: PathBuf, os: OsRelease) -> Self {
        self.engine_cache = engine_cache;
        self.os = os;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &ProvisioningPolicy {
        &self.policy
    }

    /// The plan of Engine `name`.
    pub fn plan(&self, name: &str, spec: &EngineSpec) -> EnginePlan {
        engine_plan(name, spec, &self.policy, &self.engine_cache, &self.os)
    }

    fn job(&self, key: &str) -> Option<Job> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn set_job(jobs: &Mutex<HashMap<String, Job>>, key: &str, job: Job) {
        jobs.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string(), job);
    }

    /// Checks Engine `name`; may start a pull or a build in the background.
    pub async fn check<R: ContainerRuntime>(&self, runtime: &Arc<R>, name: &str, spec: &EngineSpec) -> EngineCheck {
        for (var, value) in &spec.env {
            if let Err(e) = value.resolve() {
                return EngineCheck::not_ready(Reason::ProvisioningInvalid, format!("env `{var}` cannot be read: {e}"));
            }
        }
        match spec.provisioning {
            Provisioning::Container => self.check_image(runtime, spec).await,
            Provisioning::External => EngineCheck::ok(format!(
                "external engine {} at {}",
                spec.version,
                spec.url.as_deref().unwrap_or_default()
            )),
            Provisioning::Binary => {
                let exe = spec.executable.as_deref().unwrap_or_default();
                match resolve::which(exe) {
                    Ok(path) if let Some(why) = binary_refusal(&self.policy, &path) => {
                        EngineCheck::not_ready(Reason::ProvisioningNotAllowed, why)
                    }
                    Ok(path) => EngineCheck::ok(format!("engine {} executable {}", spec.version, path.display())),
                    Err(why) => EngineCheck::not_ready(
                        Reason::ExecutableMissing,
                        format!("executable {why}: install it, or set `spec.executable` to its absolute path"),
                    ),
                }
            }
            Provisioning::Source | Provisioning::Package => self.check_provisioned(name, spec),
        }
    }

    async fn check_image<R: ContainerRuntime>(&self, runtime: &Arc<R>, spec: &EngineSpec) -> EngineCheck {
        let image = spec.image.clone().unwrap_or_default();
        let kind = runtime.identity().kind;
        match runtime.image_exists(&image).await {
            Ok(true) => return EngineCheck::ok(format!("engine {} image {image}", spec.version)),
            Ok(false) => {}
            Err(e) => {
                return EngineCheck::not_ready(Reason::ImageMissing, format!("cannot check image `{image}`: {e}"));
            }
        }
        if !self.policy.allow_image_pulls {
            return EngineCheck::not_ready(
                Reason::ImageMissing,
                format!(
                    "image `{image}` is not present in {kind} and pulls are off (config \
                     `provisioning.allowImagePulls: false`): run `{kind} pull {image}` or enable pulls \
                     (the mock engine: scripts/build-mock-image.sh)"
                ),
            );
        }
        let key = format!("pull:{image}");
        match self.job(&key) {
            Some(Job::Running(_)) => {
                EngineCheck::not_ready(Reason::ImagePulling, format!("pulling image `{image}` into {kind}"))
            }
            Some(Job::Failed(why, at)) if at.elapsed() < PULL_RETRY => EngineCheck::not_ready(
                Reason::ImagePullFailed,
                format!(
                    "pulling image `{image}` failed: {why}; trying again within {} s",
                    PULL_RETRY.as_secs()
                ),
            ),
            _ => {
                Self::set_job(&self.jobs, &key, Job::Running(format!("pull {image}")));
                let (jobs, wake, runtime, image2) =
                    (self.jobs.clone(), self.wake.clone(), runtime.clone(), image.clone());
                tokio::spawn(async move {
                    let job = match runtime.pull_image(&image2).await {
                        Ok(()) => Job::Done,
                        Err(e) => Job::Failed(e.to_string(), Instant::now()),
                    };
                    tracing::info!(image = %image2, ok = matches!(job, Job::Done), "image pull finished");
                    Self::set_job(&jobs, &key, job);
                    wake.notify_one();
                });
                EngineCheck::not_ready(
                    Reason::ImagePulling,
                    format!("pulling image `{image}` into {kind} (config `provisioning.allowImagePulls: true`)"),
                )
            }
        }
    }

    fn check_provisioned(&self, name: &str, spec: &EngineSpec) -> EngineCheck {
        let plan = self.plan(name, spec);
        let RunAs::Executable(exe) = &plan.run else {
            return EngineCheck::not_ready(Reason::ProvisioningInvalid, format!("Engine `{name}` has no plan"));
        };
        if let Ok(path) = resolve::which(exe) {
            let mut launch = spec.clone();
            launch.provisioning = Provisioning::Binary;
            launch.executable = Some(path.display().to_string());
            launch.source = None;
            launch.package = None;
            return EngineCheck {
                verdict: Ok(format!("engine {} provisioned: {}", spec.version, path.display())),
                launch_as: Some(launch),
            };
        }
        let steps = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{}. {s}", i + 1))
            .collect::<Vec<_>>()
            .join("; ");
        if let Some(refusal) = &plan.refusal {
            return EngineCheck::not_ready(Reason::ProvisioningUnsupported, refusal.clone());
        }
        let gate = plan.gate.map(|g| g.flag).unwrap_or("provisioning");
        if !plan.may_run() {
            return EngineCheck::not_ready(
                Reason::ProvisioningNotAllowed,
                format!(
                    "`{exe}` does not exist yet and config `{gate}` is false, so llama-orch will not run the \
                     plan: {steps}. Run it yourself, or set `{gate}: true` (`orchctl plan` shows it)"
                ),
            );
        }
        let key = format!("{}:{exe}", plan.mode.as_str());
        let log = self.engine_cache.join("logs").join(format!("{name}.log"));
        match self.job(&key) {
            Some(Job::Running(step)) => EngineCheck::not_ready(
                Reason::Provisioning,
                format!("running the plan ({gate} is true): {step}; log {}", log.display()),
            ),
            Some(Job::Failed(why, _)) => EngineCheck::not_ready(
                Reason::ProvisioningFailed,
                format!("the plan failed: {why}. Fix it and restart llama-orchd, or run the plan yourself: {steps}"),
            ),
            Some(Job::Done) => EngineCheck::not_ready(
                Reason::ProvisioningFailed,
                format!("the plan ran but `{exe}` is still missing; see {}", log.display()),
            ),
            None => {
                Self::set_job(&self.jobs, &key, Job::Running("starting".into()));
                let (jobs, wake, name) = (self.jobs.clone(), self.wake.clone(), name.to_string());
                let source_dir = spec
                    .source
                    .as_ref()
                    .map(|s| plan::source_dir(&self.engine_cache, &name, &s.git_ref));
                let plan_steps = plan.steps.clone();
                let log_file = log.clone();
                tokio::spawn(async move {
                    let log = log_file;
                    let steps = plan_steps;
                    // A clone left by an earlier failed attempt would make `git clone` fail.
                    if let Some(dir) = source_dir.filter(|d| d.exists()) {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    let result = runner::run_steps(&steps, &log, |i, step| {
                        Self::set_job(
                            &jobs,
                            &key,
                            Job::Running(format!("step {}/{}: {step}", i + 1, steps.len())),
                        );
                    })
                    .await;
                    tracing::info!(engine = %name, ok = result.is_ok(), "provisioning plan finished");
                    let job = match result {
                        Ok(()) => Job::Done,
                        Err(e) => Job::Failed(e.to_string(), Instant::now()),
                    };
                    Self::set_job(&jobs, &key, job);
                    wake.notify_one();
                });
                EngineCheck::not_ready(
                    Reason::Provisioning,
                    format!("running the plan ({gate} is true): {steps}; log {}", log.display()),
                )
            }
        }
    }

    /// The engine cache.
    pub fn engine_cache(&self) -> &Path {
        &self.engine_cache
    }
}

#[cfg(test)]
mod tests;
