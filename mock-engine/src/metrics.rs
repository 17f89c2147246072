//! Counters behind `/metrics`, rendered in Prometheus text format with llama.cpp's names.
//!
//! Only counts; it does not know about HTTP or slots (the caller passes the gauges in).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Metrics {
    prompt_tokens_total: AtomicU64,
    prompt_micros_total: AtomicU64,
    tokens_predicted_total: AtomicU64,
    predicted_micros_total: AtomicU64,
    decode_total: AtomicU64,
    busy_slots_over_decodes: AtomicU64,
    n_tokens_max: AtomicU64,
}

/// Gauges read at render time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub requests_processing: usize,
    pub requests_deferred: usize,
    /// Share of the KV cache held by busy slots, 0 to 1.
    pub kv_cache_usage_ratio: f64,
}

impl Metrics {
    pub fn record_prompt(&self, tokens: u32, took: Duration) {
        self.prompt_tokens_total.fetch_add(u64::from(tokens), Ordering::Relaxed);
        self.prompt_micros_total.fetch_add(micros(took), Ordering::Relaxed);
    }

    /// One generated token, decoded while `busy_slots` slots were busy.
    pub fn record_token(&self, busy_slots: usize) {
        self.tokens_predicted_total.fetch_add(1, Ordering::Relaxed);
        self.decode_total.fetch_add(1, Ordering::Relaxed);
        self.busy_slots_over_decodes
            .fetch_add(busy_slots as u64, Ordering::Relaxed);
    }

    /// A finished generation: its decode time and how much context it used.
    pub fn record_generation(&self, took: Duration, context_used: u32) {
        self.predicted_micros_total.fetch_add(micros(took), Ordering::Relaxed);
        self.n_tokens_max.fetch_max(u64::from(context_used), Ordering::Relaxed);
    }

    pub fn tokens_predicted_total(&self) -> u64 {
        self.tokens_predicted_total.load(Ordering::Relaxed)
    }

    pub fn render(&self, gauges: Gauges) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let prompt_tokens = load(&self.prompt_tokens_total);
        let prompt_seconds = load(&self.prompt_micros_total) as f64 / 1e6;
        let predicted = load(&self.tokens_predicted_total);
        let predicted_seconds = load(&self.predicted_micros_total) as f64 / 1e6;
        let decodes = load(&self.decode_total);
        let per_second = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        let busy_per_decode = if decodes > 0 {
            load(&self.busy_slots_over_decodes) as f64 / decodes as f64
        } else {
            0.0
        };

        let families: [(&str, &str, &str, f64); 12] = [
            (
                "prompt_tokens_total",
                "counter",
                "Number of prompt tokens processed.",
                prompt_tokens as f64,
            ),
            ("prompt_seconds_total", "counter", "Prompt process time", prompt_seconds),
            (
                "tokens_predicted_total",
                "counter",
                "Number of generation tokens processed.",
                predicted as f64,
            ),
            (
                "tokens_predicted_seconds_total",
                "counter",
                "Predict process time",
                predicted_seconds,
            ),
            (
                "n_decode_total",
                "counter",
                "Total number of llama_decode() calls",
                decodes as f64,
            ),
            (
                "n_tokens_max",
                "counter",
                "Largest observed n_tokens.",
                load(&self.n_tokens_max) as f64,
            ),
            (
                "n_busy_slots_per_decode",
                "counter",
                "Average number of busy slots per llama_decode() call",
                busy_per_decode,
            ),
            (
                "prompt_tokens_seconds",
                "gauge",
                "Average prompt throughput in tokens/s.",
                per_second(prompt_tokens, prompt_seconds),
            ),
            (
                "predicted_tokens_seconds",
                "gauge",
                "Average generation throughput in tokens/s.",
                per_second(predicted, predicted_seconds),
            ),
            (
                "requests_processing",
                "gauge",
                "Number of requests processing.",
                gauges.requests_processing as f64,
            ),
            (
                "requests_deferred",
                "gauge",
                "Number of requests deferred.",
                gauges.requests_deferred as f64,
            ),
            // Older llama-server builds exported this gauge (llama.cpp removed it in 2025);
            // the mock keeps it so llama-orch's preferred source is exercised.
            (
                "kv_cache_usage_ratio",
                "gauge",
                "KV-cache usage. 1 means 100 percent usage.",
                gauges.kv_cache_usage_ratio,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in families {
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                "# HELP llamacpp:{name} {help}\n# TYPE llamacpp:{name} {kind}\nllamacpp:{name} {value}\n"
            );
        }
        out
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("llamacpp:{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no sample for {name} in:\n{text}"))
    }

    #[test]
    fn counters_and_gauges_appear_under_llama_cpp_names() {
        let m = Metrics::default();
        m.record_prompt(5, Duration::from_millis(10));
        m.record_token(2);
        m.record_token(1);
        m.record_generation(Duration::from_secs(1), 7);
        let text = m.render(Gauges {
            requests_processing: 1,
            requests_deferred: 3,
            kv_cache_usage_ratio: 0.25,
        });
        assert_eq!(sample(&text, "prompt_tokens_total"), 5.0);
        assert_eq!(sample(&text, "tokens_predicted_total"), 2.0);
        assert_eq!(sample(&text, "predicted_tokens_seconds"), 2.0);
        assert_eq!(sample(&text, "n_busy_slots_per_decode"), 1.5);
        assert_eq!(sample(&text, "n_tokens_max"), 7.0);
        assert_eq!(sample(&text, "requests_processing"), 1.0);
        assert_eq!(sample(&text, "requests_deferred"), 3.0);
        assert_eq!(sample(&text, "kv_cache_usage_ratio"), 0.25);
        assert!(text.contains("# TYPE llamacpp:requests_deferred gauge\n"));
    }
}
