//! `orchctl doctor` under `gpus: none` (a gateway that runs no engine itself): no NVIDIA or
//! container-runtime check can FAIL it, and an Engine that is not `external` does, saying its
//! Pools are blocked. Runs the real checks on this host (which has no NVIDIA driver).
#![allow(clippy::unwrap_used)]

mod common;

use common::Home;

fn checks(ran: &common::Ran) -> Vec<(String, String, String)> {
    let json: serde_json::Value = serde_json::from_str(&ran.out).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (text("check"), text("level"), text("found"))
        })
        .collect()
}

#[tokio::test]
async fn under_gpus_none_doctor_skips_nvidia_and_runtime_checks_and_fails_only_engines_that_cannot_run() {
    let home = Home::new("http://127.0.0.1:9");
    let mut config = std::fs::read_to_string(home.config()).unwrap();
    config.push_str("gpus: none\nruntime: {kind: docker, socket: unix:///nonexistent.sock}\n");
    std::fs::write(home.config(), config).unwrap();
    home.hand_written(
        "remote.yaml",
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: remote}\n\
         spec: {provisioning: external, url: 'http://127.0.0.1:9', version: '1'}\n",
    );
    let ran = home.run(&["doctor", "--json"]).await;
    let found = checks(&ran);
    let names: Vec<&str> = found.iter().map(|(n, _, _)| n.as_str()).collect();
    for skipped in [
        "nvidia-driver",
        "nvml",
        "container-runtime",
        "nvidia-ctk",
        "docker-nvidia-runtime",
    ] {
        assert!(!names.contains(&skipped), "{skipped} checked: {names:?}");
    }
    let gpus = found.iter().find(|(n, _, _)| n == "gpus-config").unwrap();
    assert_eq!(gpus.1, "ok");
    assert!(
        gpus.2.starts_with("config `gpus: none`: this daemon uses no GPUs"),
        "{}",
        gpus.2
    );
    assert!(
        !found.iter().any(|(_, level, _)| level == "fail"),
        "an unreachable external engine only warns: {found:?}"
    );
    assert_eq!(ran.code, 0, "{}", ran.out);
    home.hand_written(
        "local.yaml",
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: local}\n\
         spec: {image: 'img:dev', version: '1'}\n",
    );
    let ran = home.run(&["doctor", "--json"]).await;
    let local = checks(&ran)
        .into_iter()
        .find(|(n, _, _)| n == "engine/local (container)")
        .unwrap();
    assert_eq!(local.1, "fail");
    assert!(
        local.2.starts_with("cannot run here: config `gpus: none`"),
        "{}",
        local.2
    );
    assert_eq!(ran.code, 1);
}
