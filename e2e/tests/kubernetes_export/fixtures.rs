//! The e2e fixture as export's input: the mock stack every e2e test runs (with a digest and a
//! small queue), plus external Engines by address and by name, a demand-sized Pool on a Hub
//! model with a digest and a hidden environment value. Written to files only; what the export
//! makes of them is the tests' to check.

use std::path::{Path, PathBuf};

use llama_orch_e2e::daemon::mock_stack;
use sha2::{Digest, Sha256};

use super::tiny_model;

/// The e2e fixture and its variants, one file each, in `dir`.
pub fn fixtures(dir: &Path) -> Vec<PathBuf> {
    let digest = sha256_hex(&std::fs::read(tiny_model()).unwrap());
    let stack = mock_stack("mock", "chat", 2, &tiny_model(), &["--token-rate", "50"])
        .replace(
            "  ctxMax: 4096\n",
            &format!("  ctxMax: 4096\n  digest: sha256:{digest}\n"),
        )
        .replace(
            "  slotsPerReplica: 2\n",
            "  slotsPerReplica: 2\n  queue: {capacity: 2}\n",
        );
    let variants = [
        ("stack.yaml", stack),
        (
            "external.yaml",
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: lab-ip}\nspec: {provisioning: external, url: \"http://10.20.30.40:8081\", version: b6500}\n\
             ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: lab-dns}\nspec: {provisioning: external, url: \"http://gpu-box.lan:8081\", version: b6500, api: openai}\n\
             ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: lab-ip}\nspec: {engine: lab-ip, model: chat-model, replicas: 1}\n\
             ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: lab-dns}\nspec: {engine: lab-dns, model: chat-model, replicas: 1}\n"
                .to_string(),
        ),
        (
            "hub.yaml",
            format!(
                "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: vllm}}\nspec:\n  image: vllm/vllm-openai:v0.10.2\n  version: v0.10.2\n  api: openai\n  port: 8000\n  args: [\"--model\", \"{{model_path}}\", \"--max-model-len\", \"{{ctx_size}}\"]\n  env:\n    HF_TOKEN: {{valueFrom: {{env: HF_TOKEN}}}}\n\
                 ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: qwen}}\nspec: {{ref: \"hf:org/repo/qwen.gguf\", ctxMax: 32768, digest: \"sha256:{}\"}}\n\
                 ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: coder, labels: {{team: demo}}}}\nspec:\n  engine: vllm\n  model: qwen\n  gpusPerReplica: 2\n  slotsPerReplica: 8\n  ctxSize: 8192\n  scaling: {{minReplicas: 0, maxReplicas: 2, idleTimeout: 10m}}\n  rollout: {{strategy: Recreate}}\n",
                "c".repeat(64)
            ),
        ),
    ];
    variants
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

/// Hex SHA-256 of `bytes`, as a Model's `digest` carries it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
