//! What the monitoring files in `deploy/` ask of the daemon: Prometheus's `promtool` (located
//! once for every test that runs it), and the metric names that the Grafana dashboard and the
//! alert rules query, so a test can check each against a real scrape and the dashboard cannot
//! rot. It reads the files and the PromQL; it does not evaluate anything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Set by `scripts/test.sh` to the promtool it installed.
pub const PROMTOOL_ENV: &str = "LLORCH_PROMTOOL";
const INSTALL: &str = "bash scripts/install-promtool.sh   (as root: installs Debian's `prometheus` package \
                       without starting its server; scripts/test.sh runs it and exports LLORCH_PROMTOOL)";

/// The dashboard, relative to the repository root.
pub const DASHBOARD: &str = "deploy/grafana/llama-orch-dashboard.json";
/// The alert rules.
pub const ALERTS: &str = "deploy/prometheus/llama-orch-alerts.yaml";
/// `promtool test rules` cases for [`ALERTS`].
pub const ALERT_TESTS: &str = "deploy/prometheus/llama-orch-alerts.test.yaml";

/// Series Prometheus makes itself for every target; the daemon never exposes them.
pub const PROMETHEUS_MADE: &[&str] = &["up"];

/// `LLORCH_PROMTOOL`, else `promtool` on `PATH`; panics with the install command when it does not
/// run.
pub fn promtool() -> PathBuf {
    let path = std::env::var_os(PROMTOOL_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("promtool"));
    let runs = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        runs,
        "promtool is missing (tried `{}`; set {PROMTOOL_ENV} or put it on PATH). Install it with:\n  {INSTALL}",
        path.display()
    );
    path
}

/// `path` (relative to the repository root) as an absolute path.
pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Every PromQL expression of the dashboard: panel targets (rows included) and the metric of
/// each `label_values(metric, label)` variable.
pub fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    fn panels(list: &Value, out: &mut Vec<String>) {
        for panel in list.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_string());
                }
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        let query = variable["query"]["query"].as_str().or(variable["query"].as_str());
        if let Some(metric) = query
            .and_then(|q| q.strip_prefix("label_values("))
            .and_then(|rest| rest.split(',').next())
        {
            out.push(metric.trim().to_string());
        }
    }
    out
}

/// Every `expr` of the alert rules file's groups.
pub fn rule_exprs(rules_yaml: &str) -> Result<Vec<String>, String> {
    let rules: Value = serde_saphyr::from_str(rules_yaml).map_err(|e| e.to_string())?;
    Ok(rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["expr"].as_str().map(str::to_string))
        .collect())
}

/// Words of PromQL that are not metric names when they stand alone.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "inf",
    "nan",
];
/// Keywords whose parenthesised list holds label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric names an expression selects: identifiers outside label matchers (`{…}`), ranges
/// (`[…]`), strings, label lists (`by (…)`) and Grafana variables (`$…`), that are neither
/// functions (followed by `(`) nor keywords.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut after_label_keyword = false;
    while let Some(&c) = chars.get(i) {
        match c {
            '{' | '[' | '"' => {
                let close = match c {
                    '{' => '}',
                    '[' => ']',
                    _ => '"',
                };
                i = skip_to(&chars, i + 1, close);
            }
            '(' if after_label_keyword => {
                i = skip_to(&chars, i + 1, ')');
                after_label_keyword = false;
            }
            '$' => {
                i += 1;
                while chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while chars.get(j).is_some_and(|c| c.is_whitespace()) {
                    j += 1;
                }
                let lower = word.to_ascii_lowercase();
                after_label_keyword = LABEL_LISTS.contains(&lower.as_str());
                let function = chars.get(j) == Some(&'(') && !after_label_keyword;
                if !function && !KEYWORDS.contains(&lower.as_str()) {
                    names.insert(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number or a duration (`5m`): skip its digits and unit letters.
                while chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The index after the `close` that ends a group opened before `from` (escapes honoured).
fn skip_to(chars: &[char], mut from: usize, close: char) -> usize {
    while let Some(&c) = chars.get(from) {
        from += 1;
        if c == '\\' {
            from += 1;
        } else if c == close {
            break;
        }
    }
    from
}

/// The sample names present in a Prometheus text scrape.
pub fn exposed_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_out_of_aggregations_functions_matchers_and_variables() {
        let expr = r#"histogram_quantile(0.95, sum by (le, pool) (rate(latency_first_token_seconds_bucket{pool=~"$pool", le!="+Inf"}[$__rate_interval]))) > 10"#;
        assert_eq!(
            metric_names(expr),
            BTreeSet::from(["latency_first_token_seconds_bucket".to_string()])
        );
        let expr = "(llorch_pool_ready == 0)\n and on (pool) (llorch_pool_replicas{state=\"desired\"} > 0)\n unless on (pool) (llorch_pool_asleep == 1)";
        assert_eq!(
            metric_names(expr),
            BTreeSet::from(["llorch_pool_asleep", "llorch_pool_ready", "llorch_pool_replicas"].map(String::from))
        );
        assert_eq!(
            metric_names("increase(llorch_pool_restarts_total[15m]) >= 3"),
            BTreeSet::from(["llorch_pool_restarts_total".to_string()])
        );
        assert_eq!(
            metric_names("vllm:kv_cache_usage_perc offset 5m"),
            BTreeSet::from(["vllm:kv_cache_usage_perc".to_string()])
        );
    }

    #[test]
    fn a_scrape_names_its_samples_not_its_comments() {
        let scrape = "# HELP a_total x\n# TYPE a_total counter\na_total{x=\"1\"} 2\nb 3\n";
        assert_eq!(
            exposed_names(scrape),
            BTreeSet::from(["a_total".to_string(), "b".to_string()])
        );
    }

    #[test]
    fn the_shipped_dashboard_and_rules_query_metrics() {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(repo_file(DASHBOARD)).unwrap()).unwrap();
        let exprs = dashboard_exprs(&dashboard);
        assert!(exprs.len() > 20, "{exprs:?}");
        assert!(exprs.iter().all(|e| !metric_names(e).is_empty()), "{exprs:?}");
        let rules = rule_exprs(&std::fs::read_to_string(repo_file(ALERTS)).unwrap()).unwrap();
        assert_eq!(rules.len(), 9, "{rules:?}");
    }
}
