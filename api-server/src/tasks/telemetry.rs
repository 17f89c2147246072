//! The data plane's Prometheus series (requirements §5): one [`Telemetry`] per [`DataPlane`],
//! shared by the pool workers and the runners, and registered into each `/metrics` scrape next
//! to the snapshot-derived series.
//!
//! Labels are bounded: `pool` (declared pools), `priority` (two values), `code` (the error
//! taxonomy), `policy` (two full-queue policies) and `replica` (a pool's replica ids). Nothing
//! a client sends becomes a label value. Counters live as long as the process, like any
//! Prometheus counter; `queue_depth` of a pool that went away is removed.
//!
//! The per-token path is one atomic add: a runner takes its pool's `tokens_out` counter once
//! ([`Telemetry::tokens_out`]) and increments that handle.
//!
//! [`DataPlane`]: super::DataPlane

use std::sync::atomic::AtomicU64;

use llorch_manifests::task::{ErrorCode, Priority};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;
type U64Gauge = Gauge<u64, AtomicU64>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Buckets of `latency_first_token_seconds`: admission to first token, queueing included.
pub const FIRST_TOKEN_BUCKETS_S: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Buckets of `latency_decode_seconds`: first token to last.
pub const DECODE_BUCKETS_S: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

fn first_token_histogram() -> Histogram {
    Histogram::new(FIRST_TOKEN_BUCKETS_S)
}

fn decode_histogram() -> Histogram {
    Histogram::new(DECODE_BUCKETS_S)
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// `interactive` or `batch`, as labels and logs spell it.
pub fn priority_label(priority: Priority) -> &'static str {
    match priority {
        Priority::Interactive => "interactive",
        Priority::Batch => "batch",
    }
}

fn pool(pool: &str) -> Labels {
    vec![("pool", pool.to_string())]
}

fn pool_priority(pool: &str, priority: Priority) -> Labels {
    vec![
        ("pool", pool.to_string()),
        ("priority", priority_label(priority).to_string()),
    ]
}

/// The data plane's counters, gauges and histograms. Cheap to clone (every series is shared).
#[derive(Clone, Debug)]
pub struct Telemetry {
    enqueued: Family<Labels, Counter>,
    started: Family<Labels, Counter>,
    canceled: Family<Labels, Counter>,
    rejected: Family<Labels, Counter>,
    failed: Family<Labels, Counter>,
    queue_depth: Family<Labels, U64Gauge>,
    first_token: Histograms,
    decode: Histograms,
    tokens_in: Family<Labels, Counter>,
    tokens_out: Family<Labels, Counter>,
    backpressure: Family<Labels, Counter>,
    placements: Family<Labels, Counter>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Empty series.
    pub fn new() -> Self {
        Self {
            enqueued: Family::default(),
            started: Family::default(),
            canceled: Family::default(),
            rejected: Family::default(),
            failed: Family::default(),
            queue_depth: Family::default(),
            first_token: Family::new_with_constructor(first_token_histogram),
            decode: Family::new_with_constructor(decode_histogram),
            tokens_in: Family::default(),
            tokens_out: Family::default(),
            backpressure: Family::default(),
            placements: Family::default(),
        }
    }

    /// A task entered `pool`'s queue.
    pub fn enqueued(&self, pool: &str, priority: Priority) {
        self.enqueued.get_or_create(&pool_priority(pool, priority)).inc();
    }

    /// A task left the queue for a replica slot; its prompt (estimated tokens) goes in.
    pub fn started(&self, pool: &str, priority: Priority, tokens_in: u32) {
        self.started.get_or_create(&pool_priority(pool, priority)).inc();
        self.tokens_in
            .get_or_create(&self::pool(pool))
            .inc_by(u64::from(tokens_in));
    }

    /// A queued or running task was canceled (by its client or a disconnect).
    pub fn canceled(&self, pool: &str, priority: Priority) {
        self.canceled.get_or_create(&pool_priority(pool, priority)).inc();
    }

    /// A task was refused before it ran: an HTTP error at submit, or dropped from a full queue.
    pub fn rejected(&self, code: ErrorCode) {
        self.rejected
            .get_or_create(&vec![("code", code.as_str().to_string())])
            .inc();
    }

    /// An admitted task ended with an `error` event (other than a drop from the queue).
    pub fn failed(&self, pool: &str, code: ErrorCode) {
        self.failed
            .get_or_create(&vec![("pool", pool.to_string()), ("code", code.as_str().to_string())])
            .inc();
    }

    /// A full queue pushed back under `policy` (`reject` or `drop-lru`).
    pub fn backpressure(&self, pool: &str, policy: &'static str) {
        self.backpressure
            .get_or_create(&vec![("pool", pool.to_string()), ("policy", policy.to_string())])
            .inc();
    }

    /// A task was placed on `replica`.
    pub fn placed(&self, pool: &str, replica: &str) {
        self.placements
            .get_or_create(&vec![("pool", pool.to_string()), ("replica", replica.to_string())])
            .inc();
    }

    /// `pool`'s waiting tasks per priority.
    pub fn queue_depth(&self, pool: &str, interactive: u32, batch: u32) {
        self.queue_depth
            .get_or_create(&pool_priority(pool, Priority::Interactive))
            .set(u64::from(interactive));
        self.queue_depth
            .get_or_create(&pool_priority(pool, Priority::Batch))
            .set(u64::from(batch));
    }

    /// `pool` is gone: its queue-depth series go too.
    pub fn forget_queue(&self, pool: &str) {
        self.queue_depth.remove(&pool_priority(pool, Priority::Interactive));
        self.queue_depth.remove(&pool_priority(pool, Priority::Batch));
    }

    /// Admission to first token, in milliseconds.
    pub fn first_token_ms(&self, pool: &str, ms: u64) {
        self.first_token.get_or_create(&self::pool(pool)).observe(seconds(ms));
    }

    /// First token to last, in milliseconds.
    pub fn decode_ms(&self, pool: &str, ms: u64) {
        self.decode.get_or_create(&self::pool(pool)).observe(seconds(ms));
    }

    /// `pool`'s generated-token counter; increment the handle once per token.
    pub fn tokens_out(&self, pool: &str) -> Counter {
        self.tokens_out.get_or_create_owned(&self::pool(pool))
    }

    /// Adds every series to `registry` (shared, not copied: the scrape sees live values).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tasks_enqueued",
            "Tasks admitted into a pool's queue",
            self.enqueued.clone(),
        );
        registry.register(
            "tasks_started",
            "Tasks dispatched from the queue onto a replica slot",
            self.started.clone(),
        );
        registry.register(
            "tasks_canceled",
            "Queued or running tasks canceled by their client or a client disconnect",
            self.canceled.clone(),
        );
        registry.register(
            "tasks_rejected",
            "Tasks refused before running (HTTP errors at submit, drops from a full queue), by error code",
            self.rejected.clone(),
        );
        registry.register(
            "tasks_failed",
            "Admitted tasks that ended with an error event, by error code",
            self.failed.clone(),
        );
        registry.register(
            "queue_depth",
            "Tasks waiting in a pool's queue, per priority",
            self.queue_depth.clone(),
        );
        registry.register(
            "latency_first_token_seconds",
            "Seconds from admission to the first token (queueing included)",
            self.first_token.clone(),
        );
        registry.register(
            "latency_decode_seconds",
            "Seconds from the first token to the last, of tasks that ended",
            self.decode.clone(),
        );
        registry.register(
            "tokens_in",
            "Prompt tokens of started tasks (estimated as bytes/4, as admission counts them)",
            self.tokens_in.clone(),
        );
        registry.register(
            "tokens_out",
            "Tokens generated by engines for tasks",
            self.tokens_out.clone(),
        );
        registry.register(
            "admission_backpressure_events",
            "Full-queue events: a 429 under `reject`, a refusal or an eviction under `drop-lru`",
            self.backpressure.clone(),
        );
        registry.register(
            "placement_decisions",
            "Tasks placed on a replica",
            self.placements.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::prometheus_text;

    fn render(t: &Telemetry) -> String {
        let mut registry = Registry::default();
        t.register(&mut registry);
        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    fn has(text: &str, line: &str) {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }

    #[test]
    fn lifecycle_counters_are_labelled_by_pool_and_priority() {
        let t = Telemetry::new();
        t.enqueued("chat", Priority::Interactive);
        t.enqueued("chat", Priority::Interactive);
        t.enqueued("chat", Priority::Batch);
        t.started("chat", Priority::Interactive, 7);
        t.started("chat", Priority::Batch, 5);
        t.canceled("chat", Priority::Batch);
        let text = render(&t);
        has(&text, r#"tasks_enqueued_total{pool="chat",priority="interactive"} 2"#);
        has(&text, r#"tasks_enqueued_total{pool="chat",priority="batch"} 1"#);
        has(&text, r#"tasks_started_total{pool="chat",priority="interactive"} 1"#);
        has(&text, r#"tasks_canceled_total{pool="chat",priority="batch"} 1"#);
        has(&text, r#"tokens_in_total{pool="chat"} 12"#);
    }

    #[test]
    fn rejections_count_by_code_and_backpressure_by_pool_and_policy() {
        let t = Telemetry::new();
        t.rejected(ErrorCode::AdmissionReject);
        t.rejected(ErrorCode::AdmissionReject);
        t.rejected(ErrorCode::InvalidParams);
        t.backpressure("chat", "reject");
        t.backpressure("chat", "drop-lru");
        t.failed("chat", ErrorCode::WorkerReset);
        let text = render(&t);
        has(&text, r#"tasks_rejected_total{code="ADMISSION_REJECT"} 2"#);
        has(&text, r#"tasks_rejected_total{code="INVALID_PARAMS"} 1"#);
        has(
            &text,
            r#"admission_backpressure_events_total{pool="chat",policy="reject"} 1"#,
        );
        has(
            &text,
            r#"admission_backpressure_events_total{pool="chat",policy="drop-lru"} 1"#,
        );
        has(&text, r#"tasks_failed_total{pool="chat",code="WORKER_RESET"} 1"#);
    }

    #[test]
    fn a_token_counter_handle_adds_to_the_shared_series() {
        let t = Telemetry::new();
        let a = t.tokens_out("chat");
        let b = t.tokens_out("chat");
        for _ in 0..3 {
            a.inc();
        }
        b.inc();
        has(&render(&t), r#"tokens_out_total{pool="chat"} 4"#);
    }

    #[test]
    fn queue_depth_is_per_priority_and_leaves_with_its_pool() {
        let t = Telemetry::new();
        t.queue_depth("chat", 3, 1);
        t.queue_depth("code", 0, 2);
        let text = render(&t);
        has(&text, r#"queue_depth{pool="chat",priority="interactive"} 3"#);
        has(&text, r#"queue_depth{pool="chat",priority="batch"} 1"#);
        t.forget_queue("chat");
        let text = render(&t);
        assert!(!text.contains(r#"queue_depth{pool="chat""#), "{text}");
        has(&text, r#"queue_depth{pool="code",priority="batch"} 2"#);
    }

    #[test]
    fn latencies_land_in_millisecond_buckets_and_placements_count_per_replica() {
        let t = Telemetry::new();
        t.first_token_ms("chat", 40);
        t.first_token_ms("chat", 400);
        t.decode_ms("chat", 900);
        t.placed("chat", "chat-0");
        t.placed("chat", "chat-0");
        t.placed("chat", "chat-1");
        let text = render(&t);
        has(&text, r#"latency_first_token_seconds_bucket{pool="chat",le="0.05"} 1"#);
        has(&text, r#"latency_first_token_seconds_bucket{pool="chat",le="0.5"} 2"#);
        has(&text, r#"latency_first_token_seconds_count{pool="chat"} 2"#);
        has(&text, r#"latency_decode_seconds_sum{pool="chat"} 0.9"#);
        has(&text, r#"placement_decisions_total{pool="chat",replica="chat-0"} 2"#);
        has(&text, r#"placement_decisions_total{pool="chat",replica="chat-1"} 1"#);
    }
}
