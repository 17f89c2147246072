//! `Pool`: N replicas of one Engine serving one Model on a set of GPUs, with the queue and
//! restart policy that govern them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::meta::{Kind, Spec};

/// `Pool.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolSpec {
    /// Name of the Engine that runs the replicas.
    #[schemars(length(max = crate::validate::MAX_NAME_CHARS), pattern(crate::validate::NAME_PATTERN))]
    pub engine: String,
    /// Name of the Model the replicas serve.
    #[schemars(length(max = crate::validate::MAX_NAME_CHARS), pattern(crate::validate::NAME_PATTERN))]
    pub model: String,
    /// How many replicas to run (0–16), always. Leave it out to size the Pool by demand with
    /// `scaling` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = crate::validate::MAX_REPLICAS))]
    pub replicas: Option<u32>,
    /// Replicas by demand instead of a fixed count: between `minReplicas` and `maxReplicas`,
    /// down to zero after `idleTimeout` without a task when `minReplicas` is 0, and up again
    /// when a task arrives (see docs/scaling.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingSpec>,
    /// Which Pools keep their VRAM when it is short: when a Pool wakes and does not fit, idle
    /// Pools sized by `scaling` with `minReplicas: 0` are put to sleep to make room, lowest
    /// `priority` first, then the least recently used (docs/scaling.md). Higher stays. Left
    /// out: 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,

    /// Which GPUs the pool may use: `all`, or a list of device indices such as `[0, 1]`.
    #[serde(default)]
    pub gpus: GpuSelector,
    /// GPUs given to each replica (1–8).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 8))]
    pub gpus_per_replica: u32,
    /// How a replica's model is split across its GPUs, as relative weights, one per GPU of
    /// the replica (e.g. `[2, 1]`): passed to the engine as `{tensor_split}` (llama.cpp's
    /// `--tensor-split 2,1`). Only when set, and only with `gpusPerReplica` > 1. Placement
    /// checks each GPU's share against that GPU; without it the model is assumed evenly split,
    /// so the smallest GPU caps what a replica may need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(range(min = 1, max = 1000)))]
    pub tensor_split: Option<Vec<u32>>,
    /// Concurrent sequences per replica (the engine's `--parallel`; 1–256).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 256))]
    pub slots_per_replica: u32,
    /// Context size per replica; defaults to the Model's `ctxMax`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub ctx_size: Option<u32>,
    /// The admission queue in front of the replicas.
    #[serde(default)]
    pub queue: QueueSpec,
    /// How crashed replicas are restarted.
    #[serde(default)]
    pub restart: RestartSpec,
    /// How a changed spec (an edit, `orchctl reload`) replaces the replicas.
    #[serde(default, skip_serializing_if = "RolloutSpec::is_default")]
    pub rollout: RolloutSpec,
    /// How long sessions keep their replica, and their token budget.
    #[serde(default)]
    pub sessions: SessionSpec,
    /// What the Pool serves: text generation (`generate`, the default) or embeddings
    /// (`embeddings`: `POST /v1/embeddings`; a llama-server Engine needs `--embeddings`).
    #[serde(default, skip_serializing_if = "Workload::is_default")]
    pub workload: Workload,
    /// Job records of this Pool's tasks (`enabled: false` for sensitive prompts: its tasks
    /// leave no record).
    #[serde(default, skip_serializing_if = "PoolRecords::is_default")]
    pub records: PoolRecords,
}

/// A Pool's job records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolRecords {
    /// Record this Pool's tasks (default true; the daemon's `records.enabled` must be too).
    #[serde(default = "records_on")]
    pub enabled: bool,
}

impl Default for PoolRecords {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl PoolRecords {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn records_on() -> bool {
    true
}

/// What a Pool serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Chat and completions: a token stream per task.
    #[default]
    Generate,
    /// Embeddings: one vector per input.
    Embeddings,
}

impl Workload {
    /// True for `generate`.
    pub fn is_default(&self) -> bool {
        *self == Workload::Generate
    }

    /// `generate` or `embeddings`, as manifests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Generate => "generate",
            Workload::Embeddings => "embeddings",
        }
    }
}

impl PoolSpec {
    /// The replica count the controller works to: `replicas`, or — for a Pool sized by
    /// `scaling` — what the controller decided from demand (it resolves `scaling` into
    /// `replicas` before anything else reads the spec); 0 when neither is set.
    pub fn replica_count(&self) -> u32 {
        self.replicas.unwrap_or(0)
    }

    /// The fewest and the most replicas the Pool may run: `replicas` for both, else
    /// `scaling`'s bounds.
    pub fn replica_bounds(&self) -> (u32, u32) {
        match (&self.scaling, self.replicas) {
            (Some(s), _) => (s.min_replicas, s.max_replicas),
            (None, n) => (n.unwrap_or(0), n.unwrap_or(0)),
        }
    }

    /// This spec with the replica count fixed at `n`: how the controller (with the count it
    /// decided from demand) and `orchctl plan` (with the most) see a Pool sized by `scaling`.
    pub fn sized(&self, n: u32) -> PoolSpec {
        PoolSpec {
            replicas: Some(n),
            ..self.clone()
        }
    }

    /// True when the Pool may have no replica and wakes when a task arrives.
    pub fn scales_to_zero(&self) -> bool {
        self.scaling.as_ref().is_some_and(|s| s.min_replicas == 0)
    }

    /// The context size each replica runs with: the Pool's `ctxSize`, else the Model's
    /// `ctxMax`. The one place this rule lives.
    pub fn effective_ctx(&self, model: &crate::ModelSpec) -> u32 {
        self.ctx_size.unwrap_or(model.ctx_max)
    }
}

/// `Pool.spec.rollout`: how replicas are replaced when their spec changes (docs/reload.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutSpec {
    /// `Auto` (the default): `Surge` when the GPUs have room for the new replica next to the
    /// old one, else `Recreate`. `Surge`: the new replica starts next to the old one, which
    /// serves until the new one is Ready (a failure rolls back). `Recreate`: the old replica
    /// finishes its tasks and stops first, then the new one starts — one replica at a time;
    /// tasks wait in the queue meanwhile, and there is no old copy to roll back to.
    #[serde(default)]
    pub strategy: RolloutStrategy,
}

impl RolloutSpec {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `Pool.spec.rollout.strategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RolloutStrategy {
    /// `Surge` when it fits in VRAM, else `Recreate`.
    #[default]
    Auto,
    /// Start the new replica next to the old one (two copies in VRAM for a while).
    Surge,
    /// Stop the old replica first (one copy in VRAM; a gap in which tasks wait).
    Recreate,
}

/// `Pool.spec.scaling`: replicas by demand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScalingSpec {
    /// Replicas kept even without demand; 0 lets the Pool sleep (no container, no VRAM) until
    /// a task arrives.
    #[serde(default)]
    #[schemars(range(max = crate::validate::MAX_REPLICAS))]
    pub min_replicas: u32,
    /// Most replicas (1–16): an awake Pool gets one more when tasks have waited for a slot for
    /// 5 s and the VRAM fits.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = crate::validate::MAX_REPLICAS))]
    pub max_replicas: u32,
    /// How long the Pool may go without a queued or running task before it scales down to
    /// `minReplicas`, and how long a replica's worth of slots must be idle before an awake
    /// Pool drops a replica (1s–24h).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
}

fn default_idle_timeout() -> HumanDuration {
    HumanDuration::minutes(5)
}

/// Sessions (ORCH-3021, ORCH-3099): a `session_id` keeps a conversation on one replica for
/// its KV cache until it has been idle `ttlSeconds` or used `maxTurns`; then it starts afresh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionSpec {
    /// Idle time after which a session expires (1–3600).
    #[serde(default = "default_session_ttl")]
    #[schemars(range(min = 1, max = 3600))]
    pub ttl_seconds: u64,
    /// Turns after which a session starts afresh (1–1000).
    #[serde(default = "default_session_turns")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_turns: u32,
    /// Tokens a session may generate over its life; a task whose `max_tokens` would exceed
    /// what is left is refused before enqueue. None: no budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub token_budget: Option<u64>,
}

impl Default for SessionSpec {
    fn default() -> Self {
        Self {
            ttl_seconds: default_session_ttl(),
            max_turns: default_session_turns(),
            token_budget: None,
        }
    }
}

fn default_session_ttl() -> u64 {
    600
}

fn default_session_turns() -> u32 {
    8
}

impl Spec for PoolSpec {
    const KIND: Kind = Kind::Pool;
}

/// Which GPUs a pool may use: the keyword `all`, or device indices such as `[0, 1]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum GpuSelector {
    /// `all`: every GPU in the inventory.
    Keyword(AllGpus),
    /// Device indices, e.g. `[0, 1]`: at least one, each once.
    #[schemars(extend("minItems" = 1, "uniqueItems" = true))]
    Devices(Vec<u32>),
}

impl Default for GpuSelector {
    fn default() -> Self {
        GpuSelector::Keyword(AllGpus::All)
    }
}

impl GpuSelector {
    /// The selected indices out of `available` (all of them for `all`), in ascending order,
    /// without duplicates.
    pub fn select(&self, available: &[u32]) -> Vec<u32> {
        let mut out: Vec<u32> = match self {
            GpuSelector::Keyword(AllGpus::All) => available.to_vec(),
            GpuSelector::Devices(d) => d.clone(),
        };
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The keyword `all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AllGpus {
    /// Every GPU.
    #[serde(rename = "all")]
    All,
}

/// The admission queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueueSpec {
    /// Tasks that may wait per pool (1–100000).
    #[serde(default = "default_queue_capacity")]
    #[schemars(range(min = 1, max = 100_000))]
    pub capacity: u32,
    /// What happens when the queue is full.
    #[serde(default)]
    pub full_policy: FullQueuePolicy,
}

impl Default for QueueSpec {
    fn default() -> Self {
        Self {
            capacity: default_queue_capacity(),
            full_policy: FullQueuePolicy::default(),
        }
    }
}

/// Full-queue policy (ORCH-3005).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FullQueuePolicy {
    /// Refuse the new task with 429.
    #[default]
    Reject,
    /// Drop the least recently enqueued task to make room.
    DropLru,
}

/// Restart policy: exponential backoff and a circuit breaker (OC-POOL-3010/3011).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestartSpec {
    /// First delay after a crash, in milliseconds (at least 10).
    #[serde(default = "default_backoff_initial_ms")]
    #[schemars(range(min = 10))]
    pub backoff_initial_ms: u64,
    /// Longest delay between attempts, in milliseconds (at least `backoffInitialMs`).
    #[serde(default = "default_backoff_max_ms")]
    #[schemars(range(min = 10))]
    pub backoff_max_ms: u64,
    /// Consecutive failures after which the circuit opens: attempts pause for `backoffMaxMs`
    /// and then one trial start is made (half-open).
    #[serde(default = "default_circuit_failures")]
    #[schemars(range(min = 1))]
    pub circuit_breaker_failures: u32,
}

impl Default for RestartSpec {
    fn default() -> Self {
        Self {
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            circuit_breaker_failures: default_circuit_failures(),
        }
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn one() -> u32 {
    1
}

fn default_queue_capacity() -> u32 {
    64
}

fn default_backoff_initial_ms() -> u64 {
    500
}

fn default_backoff_max_ms() -> u64 {
    30_000
}

fn default_circuit_failures() -> u32 {
    6
}
