//! The shipped Prometheus alert rules (`deploy/prometheus/llama-orch-alerts.yaml`) as Prometheus
//! itself judges them: `promtool check rules` (syntax, PromQL, templates) and `promtool test
//! rules` on `llama-orch-alerts.test.yaml`, where each alert must fire on synthetic series that
//! should trip it, with its labels and annotations, and stay quiet on those that should not.
//!
//! `promtool` comes from `scripts/install-promtool.sh` (run by `scripts/test.sh`, which exports
//! `LLORCH_PROMTOOL`); without it the test fails with the command to run. No daemon is needed:
//! `metrics_exposition.rs` checks that every series these rules query is really exposed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use llama_orch_e2e::monitoring::{ALERT_TESTS, ALERTS, promtool, repo_file};

fn explain(what: &str, out: &Output) -> String {
    format!(
        "`{what}` exited with {}.\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn promtool_checks_the_alert_rules_and_finds_all_nine() {
    let out = Command::new(promtool())
        .args(["check", "rules"])
        .arg(repo_file(ALERTS))
        .output()
        .expect("run promtool");
    assert!(out.status.success(), "{}", explain("promtool check rules", &out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("SUCCESS: 9 rules found"), "{stdout}");
}

#[test]
fn every_alert_fires_on_its_synthetic_series_and_not_on_the_healthy_ones() {
    // promtool resolves `rule_files` relative to the test file.
    let tests = repo_file(ALERT_TESTS);
    let out = Command::new(promtool())
        .args(["test", "rules"])
        .arg(&tests)
        .output()
        .expect("run promtool");
    assert!(out.status.success(), "{}", explain("promtool test rules", &out));
    // Every alert of the rules file has a test group that expects it to fire.
    let rules = std::fs::read_to_string(repo_file(ALERTS)).unwrap();
    let cases = std::fs::read_to_string(&tests).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        let expected = format!("alertname: {alert}\n        exp_alerts:\n          - exp_labels:");
        assert!(cases.contains(&expected), "no test expects {alert} to fire");
    }
}
