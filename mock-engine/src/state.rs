//! The state shared by all handlers: settings, slots, metrics, faults, the request report and
//! the loading flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::Config;
use crate::faults::Faults;
use crate::metrics::Metrics;
use crate::request_log::RequestLog;
use crate::slots::SlotPool;
use crate::tokenizer::Tokenizer;

/// `build_info` in `/props` and `system_fingerprint` in OpenAI responses.
pub const BUILD_INFO: &str = concat!("mock-engine ", env!("CARGO_PKG_VERSION"));

#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub slots: Arc<SlotPool>,
    pub metrics: Metrics,
    pub faults: Faults,
    /// Recent request bodies for `GET /debug/requests`.
    pub requests: RequestLog,
    pub tokenizer: Tokenizer,
    loaded: AtomicBool,
    model_size: AtomicU64,
    started: Instant,
    started_unix: u64,
    next_task: AtomicU64,
}

impl AppState {
    pub fn new(config: Config) -> Arc<Self> {
        let slots = SlotPool::new(config.parallel as usize);
        let faults = Faults::new(config.exit_after_tokens, config.hang_after_tokens);
        Arc::new(Self {
            config,
            slots,
            metrics: Metrics::default(),
            faults,
            requests: RequestLog::default(),
            tokenizer: Tokenizer::default(),
            loaded: AtomicBool::new(false),
            model_size: AtomicU64::new(0),
            started: Instant::now(),
            started_unix: unix_now(),
            next_task: AtomicU64::new(0),
        })
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    /// Marks the model loaded; `model_size` is the file's size in bytes.
    pub fn set_loaded(&self, model_size: u64) {
        self.model_size.store(model_size, Ordering::SeqCst);
        self.loaded.store(true, Ordering::SeqCst);
    }

    pub fn model_size(&self) -> u64 {
        self.model_size.load(Ordering::SeqCst)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Unix time the process started ("created" of the model in `/v1/models`).
    pub fn started_unix(&self) -> u64 {
        self.started_unix
    }

    pub fn next_task_id(&self) -> u64 {
        self.next_task.fetch_add(1, Ordering::SeqCst)
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
