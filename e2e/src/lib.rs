//! llama-orch-e2e (skeleton).
