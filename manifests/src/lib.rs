//! llama-orch's contract crate: the manifest kinds (`Engine`, `Model`, `Pool`), the daemon's
//! config file, per-object status, events and the control-plane wire types, plus a pure parser
//! that turns YAML text into validated objects with errors that name file, document and field.
//!
//! This crate does no I/O of its own (callers hand in file names and text) and depends only on
//! serde, schemars and a YAML front end, so every other crate can depend on it.
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod duration;
pub mod engine;
pub mod error;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod hash;
pub mod identity;
pub mod meta;
pub mod model;
pub mod parse;
pub mod pool;
pub mod pool_size;
pub mod reason;
pub mod records;
pub mod render;
pub mod schema;
pub mod secrets;
pub mod serving;
pub mod status;
pub mod task;
pub mod text;
pub mod transcript;
pub mod units;
pub mod validate;
pub mod warnings;

pub use engine::{ApiFlavour, EngineSpec, HealthCheck, Provisioning};
pub use error::ManifestError;
pub use identity::{Endpoint, ReplicaId};
pub use meta::{API_VERSION, AnyObject, Kind, Object, ObjectMeta, ObjectRef, Spec};
pub use model::ModelSpec;
pub use parse::{MAX_MANIFEST_BYTES, parse_file};
pub use pool::{AllGpus, FullQueuePolicy, GpuSelector, PoolSpec, QueueSpec, RestartSpec, SessionSpec, Workload};
pub use reason::Reason;
pub use serving::{Blocked, ServingContract, ServingPool, ServingReplica};

/// An `Engine` manifest.
pub type Engine = Object<EngineSpec>;
/// A `Model` manifest.
pub type Model = Object<ModelSpec>;
/// A `Pool` manifest.
pub type Pool = Object<PoolSpec>;
