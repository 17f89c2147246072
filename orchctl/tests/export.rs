//! `orchctl export kubernetes` on the examples, against golden files in
//! `examples/kubernetes/` (regenerate with `LLORCH_UPDATE_GOLDEN=1 cargo test -p orchctl --test
//! export`): the chat Pool alone and with the gateway, every Engine example, and the Engine
//! examples as KubeAI Models. The same files are validated against Kubernetes' own schemas by
//! `e2e/tests/kubernetes_export.rs`. Plus what export refuses and the config it refuses under.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Home, examples};

/// What each golden file is made from.
const GOLDEN: [(&str, &[&str]); 4] = [
    (
        "chat.yaml",
        &["-f", "chat-pool.yaml", "-f", "mock-pool.yaml", "-f", "tiny-model.yaml"],
    ),
    (
        "chat-with-gateway.yaml",
        &[
            "-f",
            "chat-pool.yaml",
            "-f",
            "mock-pool.yaml",
            "-f",
            "tiny-model.yaml",
            "--with-gateway",
            "-n",
            "llama-orch",
        ],
    ),
    ("engines.yaml", &["-f", "engines/"]),
    (
        "kubeai-vllm-qwen.yaml",
        &["-f", "kubeai/vllm-qwen.yaml", "--format", "kubeai", "-n", "llm"],
    ),
];

fn export(home: &Home, args: &[&str]) -> common::Ran {
    let examples = examples();
    let mut full = vec!["export".to_string(), "kubernetes".to_string()];
    let mut after_f = false;
    for a in args {
        full.push(if after_f {
            examples.join(a).display().to_string()
        } else {
            (*a).to_string()
        });
        after_f = *a == "-f";
    }
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    home.run_blocking(&refs)
}

#[test]
fn the_examples_export_as_their_golden_files() {
    let home = Home::new("http://127.0.0.1:9");
    let update = std::env::var_os("LLORCH_UPDATE_GOLDEN").is_some();
    for (golden, args) in GOLDEN {
        let ran = export(&home, args);
        assert_eq!(ran.code, 0, "{golden}: {ran:?}");
        let path = examples().join("kubernetes").join(golden);
        if update {
            std::fs::write(&path, &ran.out).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            want == ran.out,
            "{} differs from what export writes now (LLORCH_UPDATE_GOLDEN=1 regenerates it):\n{}",
            path.display(),
            similar::TextDiff::from_lines(&want, &ran.out).unified_diff()
        );
    }
}

#[test]
fn the_model_file_on_a_claim_and_the_gateway_token_are_named_on_stderr() {
    let home = Home::new("http://127.0.0.1:9");
    let ran = export(&home, GOLDEN[1].1);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.err
            .contains("note: pool/chat: the engine reads `tiny.gguf` from claim `llorch-model-tiny`"),
        "{}",
        ran.err
    );
    assert!(
        ran.err.contains("kubectl create secret generic llorch-gateway-token"),
        "{}",
        ran.err
    );
    // stdout is YAML only: every document parses.
    for doc in ran.out.split("\n---\n").skip(1) {
        let _: serde_json::Value = serde_saphyr::from_str(doc).unwrap();
    }
}

#[test]
fn a_simulated_inventory_refuses_container_pools_and_writes_nothing() {
    let home = Home::new("http://127.0.0.1:9");
    let config = std::fs::read_to_string(home.config()).unwrap();
    std::fs::write(
        home.config(),
        format!("{config}gpus:\n  simulate:\n    - {{name: Simulated RTX 3090, vramBytes: 25769803776}}\n"),
    )
    .unwrap();
    let ran = export(&home, GOLDEN[0].1);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(ran.out, "");
    assert!(
        ran.err.contains("error: pool/chat: this host's GPUs are simulated"),
        "{}",
        ran.err
    );
}

#[test]
fn a_binary_engine_is_refused_with_what_to_change_and_a_named_pool_exports_alone() {
    let home = Home::new("http://127.0.0.1:9");
    let file = home.input_file(
        "mixed.yaml",
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: local}\nspec:\n  provisioning: binary\n  executable: /usr/local/bin/llama-server\n  version: b6500\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: box}\nspec:\n  image: ghcr.io/ggml-org/llama.cpp:server-cuda\n  version: server-cuda\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {name: m}\nspec: {ref: \"hf:org/repo/m.gguf\", ctxMax: 4096}\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: here}\nspec: {engine: local, model: m, replicas: 1}\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: there}\nspec: {engine: box, model: m, replicas: 1}\n",
    );
    let all = home.run_blocking(&["export", "kubernetes", "-f", &file]);
    assert_eq!(all.code, 1, "{all:?}");
    assert_eq!(all.out, "");
    assert!(
        all.err
            .contains("error: pool/here: Engine `local` is `provisioning: binary`: it runs as a process on this host"),
        "{}",
        all.err
    );
    assert!(all.err.contains("name the Pools to export"), "{}", all.err);
    let one = home.run_blocking(&["export", "kubernetes", "-f", &file, "pool/there"]);
    assert_eq!(one.code, 0, "{one:?}");
    assert!(one.out.contains("name: llorch-there"), "{}", one.out);
    assert!(!one.out.contains("llorch-here"), "{}", one.out);
    let missing = home.run_blocking(&["export", "kubernetes", "-f", &file, "pool/nowhere"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing.err.contains("Pool `nowhere` is not declared"),
        "{}",
        missing.err
    );
}

#[test]
fn the_engine_examples_do_not_map_onto_kubeai_and_each_says_why() {
    let home = Home::new("http://127.0.0.1:9");
    let ran = export(&home, &["-f", "engines/", "--format", "kubeai"]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(ran.out, "");
    for pool in ["chat-llamacpp", "chat-sglang", "chat-tgi", "chat-vllm"] {
        assert!(
            ran.err.contains(&format!("error: pool/{pool}: ")),
            "{pool}: {}",
            ran.err
        );
    }
}

#[test]
fn a_set_whose_references_do_not_hold_is_not_exported() {
    let home = Home::new("http://127.0.0.1:9");
    let file = home.input_file(
        "dangling.yaml",
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: lost}\nspec: {engine: nowhere, model: nothing, replicas: 1}\n",
    );
    let ran = home.run_blocking(&["export", "kubernetes", "-f", &file]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(ran.out, "");
    assert!(ran.err.contains("Engine `nowhere` does not exist"), "{}", ran.err);
    assert!(ran.err.contains("does not hold together"), "{}", ran.err);
}
