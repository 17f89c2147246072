//! llama-orch's controller: watches manifests, drives engine containers through a container
//! runtime until they match, probes them, and publishes status, events and a snapshot the API
//! server reads. It never serves tasks.

pub mod atomic_file;
pub mod backoff;
pub mod catalog;
pub mod cold_start;
pub mod conditions;
pub mod controller;
pub mod drains;
pub mod eviction;
pub mod external;
pub mod gpu;
pub mod kv_usage;
pub mod manifest_dir;
pub mod manifest_edit;
pub mod manifest_store;
pub mod models;
pub mod on_gpu;
pub mod placement;
pub mod pool;
pub mod probe;
pub mod provision;
pub mod reloads;
pub mod retire;
pub mod rollout;
pub mod runtime;
pub mod scaling;
pub mod serving;
pub mod spec;
pub mod state_dir;
pub mod state_map;
pub mod triggers;
