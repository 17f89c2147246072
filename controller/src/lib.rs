//! llama-orch-controller (skeleton).
