//! llama-orch's controller: watches manifests, drives engine containers through a container
//! runtime until they match, probes them, and publishes status, events and a snapshot the API
//! server reads. It never serves tasks.

pub mod runtime;
