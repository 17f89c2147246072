//! Reads the samples of one gauge out of an engine's Prometheus text exposition (format
//! 0.0.4). It only finds values: it validates nothing else in the page and never fails on
//! lines it does not need, so a new family in an engine's `/metrics` cannot break it.
//!
//! Why not a parser crate: the one maintained-looking candidate, `prometheus-parse` (last
//! released 2023), matches metric names with `\w+` and so cannot read the engines' own names
//! (`llamacpp:…`, `vllm:…`, which the text format allows); the others are single-author
//! crates that pull a parser generator. What is needed here is small: the name, the label
//! block (skipped, quotes and escapes honoured) and the value.

/// The finite values of every sample named exactly `name` (any labels), in page order.
pub fn samples(text: &str, name: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|line| sample(line.trim_start(), name))
        .collect()
}

/// The value of `line` when it is a sample of `name`.
fn sample(line: &str, name: &str) -> Option<f64> {
    if line.starts_with('#') {
        return None;
    }
    let rest = line.strip_prefix(name)?;
    let rest = match rest.chars().next()? {
        '{' => skip_labels(rest)?,
        c if c.is_ascii_whitespace() => rest,
        // A longer name that starts with `name` (`name_total`).
        _ => return None,
    };
    let value = rest.split_ascii_whitespace().next()?;
    let value: f64 = value.parse().ok()?;
    value.is_finite().then_some(value)
}

/// What follows the label block that `s` opens with `{`.
fn skip_labels(s: &str) -> Option<&str> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '}') => return s.get(i + 1..),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As vLLM 0.11 serves it (two engines of one model, an unrelated family around it).
    const VLLM: &str = "\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine=\"0\",model_name=\"qwen\"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"qwen\"} 0.25
vllm:kv_cache_usage_perc{engine=\"1\",model_name=\"qw}e\\\"n\"} 0.5
vllm:kv_cache_usage_perc_extra 9
";

    #[test]
    fn every_sample_of_the_family_is_read_whatever_its_labels() {
        assert_eq!(samples(VLLM, "vllm:kv_cache_usage_perc"), vec![0.25, 0.5]);
        assert_eq!(samples(VLLM, "vllm:num_requests_running"), vec![2.0]);
    }

    #[test]
    fn a_missing_family_a_longer_name_and_comments_give_nothing() {
        assert!(samples(VLLM, "vllm:gpu_cache_usage_perc").is_empty());
        assert!(
            samples(
                "# HELP llamacpp:kv_cache_usage_ratio x\n",
                "llamacpp:kv_cache_usage_ratio"
            )
            .is_empty()
        );
        assert!(samples("vllm:kv_cache_usage_percent 1\n", "vllm:kv_cache_usage_perc").is_empty());
    }

    #[test]
    fn unlabelled_samples_with_timestamps_parse_and_bad_values_are_skipped() {
        let text = "llamacpp:kv_cache_usage_ratio 0.125 1700000000000\nllamacpp:kv_cache_usage_ratio NaN\n\
                    llamacpp:kv_cache_usage_ratio oops\nllamacpp:kv_cache_usage_ratio{a=\"unterminated 1\n";
        assert_eq!(samples(text, "llamacpp:kv_cache_usage_ratio"), vec![0.125]);
    }
}
