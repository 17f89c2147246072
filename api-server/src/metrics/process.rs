//! The daemon's own process series under their standard names (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, …, as Prometheus's client libraries
//! name them) and `llorch_build_info`.
//!
//! prometheus-client has no process collector, so this reads them from `/proc/self` through the
//! `procfs` crate, as the Go and Python clients do (`metrics-process` does the same on Linux but
//! drags in macOS and Windows backends). Those are small kernel-generated files, but a read is
//! still file I/O, so [`ProcessSample::collect`] is meant for `spawn_blocking`. A figure that
//! cannot be read (or a platform other than Linux) is left out, never reported as 0.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type F64Gauge = Gauge<f64, AtomicU64>;
type U64Gauge = Gauge<u64, AtomicU64>;

/// This build's version, as Cargo knew it at compile time (the only build fact recorded).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One reading of the process's figures; `None` where unknown.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessSample {
    /// User and system CPU time, seconds.
    pub cpu_seconds_total: Option<f64>,
    /// Resident memory, bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory, bytes.
    pub virtual_memory_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors (`None` when unlimited).
    pub max_fds: Option<u64>,
    /// When the process started, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
    /// OS threads.
    pub threads: Option<u64>,
}

impl ProcessSample {
    /// Reads the running process's figures (blocking: a few `/proc/self` files).
    #[cfg(target_os = "linux")]
    pub fn collect() -> Self {
        use procfs::WithCurrentSystemInfo;
        use procfs::process::{LimitValue, Process};
        let mut sample = Self::default();
        let Ok(me) = Process::myself() else {
            return sample;
        };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            sample.cpu_seconds_total = Some((stat.utime + stat.stime) as f64 / ticks);
            sample.resident_memory_bytes = Some(stat.rss_bytes().get());
            sample.virtual_memory_bytes = Some(stat.vsize);
            sample.threads = u64::try_from(stat.num_threads).ok();
            sample.start_time_seconds = procfs::boot_time_secs()
                .ok()
                .map(|boot| boot as f64 + stat.starttime as f64 / ticks);
        }
        sample.open_fds = me.fd_count().ok().map(|n| n as u64);
        sample.max_fds = me.limits().ok().and_then(|l| match l.max_open_files.soft_limit {
            LimitValue::Value(n) => Some(n),
            LimitValue::Unlimited => None,
        });
        sample
    }

    /// Nothing is read off Linux.
    #[cfg(not(target_os = "linux"))]
    pub fn collect() -> Self {
        Self::default()
    }
}

/// `llorch_build_info{version}` = 1.
pub(super) fn register_build_info(registry: &mut Registry) {
    let info = Family::<Vec<(&'static str, String)>, U64Gauge>::default();
    info.get_or_create(&vec![("version", VERSION.to_string())]).set(1);
    registry.register(
        "llorch_build_info",
        "Always 1; `version` is the llama-orchd build serving this scrape",
        info,
    );
}

/// The standard `process_*` series of `sample`.
pub(super) fn register_process(registry: &mut Registry, sample: &ProcessSample) {
    let m = sample;
    if let Some(seconds) = m.cpu_seconds_total {
        let cpu = Counter::<f64, AtomicU64>::default();
        cpu.inc_by(seconds);
        registry.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            cpu,
        );
    }
    let gauges: [(&str, &str, Option<f64>); 6] = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            m.resident_memory_bytes.map(as_f64),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            m.virtual_memory_bytes.map(as_f64),
        ),
        (
            "process_open_fds",
            "Number of open file descriptors",
            m.open_fds.map(as_f64),
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors",
            m.max_fds.map(as_f64),
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            m.start_time_seconds,
        ),
        (
            "process_threads",
            "Number of OS threads in the process",
            m.threads.map(as_f64),
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(v) = value {
            let g = F64Gauge::default();
            g.set(v);
            registry.register(name, help, g);
        }
    }
}

fn as_f64(n: u64) -> f64 {
    n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::prometheus_text;

    fn render(f: impl FnOnce(&mut Registry)) -> String {
        let mut registry = Registry::default();
        f(&mut registry);
        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    fn value(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    }

    #[test]
    fn this_process_reports_cpu_memory_fds_and_a_start_time_in_the_past() {
        let text = render(|r| register_process(r, &ProcessSample::collect()));
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"), "{text}");
        assert!(value(&text, "process_cpu_seconds_total") >= 0.0);
        assert!(value(&text, "process_resident_memory_bytes") > 1_000_000.0, "{text}");
        assert!(
            value(&text, "process_open_fds") >= 3.0,
            "stdin, stdout, stderr at least:\n{text}"
        );
        let start = value(&text, "process_start_time_seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(start > 1.7e9 && start <= now + 1.0, "start {start}, now {now}");
    }

    #[test]
    fn a_platform_without_figures_renders_no_process_series() {
        let text = render(|r| register_process(r, &ProcessSample::default()));
        assert!(!text.contains("process_"), "{text}");
    }

    #[test]
    fn build_info_is_one_labelled_with_the_crate_version() {
        let text = render(register_build_info);
        assert!(
            text.lines()
                .any(|l| l == format!(r#"llorch_build_info{{version="{VERSION}"}} 1"#)),
            "{text}"
        );
    }
}
