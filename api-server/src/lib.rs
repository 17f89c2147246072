//! llama-orch-api-server (skeleton).
