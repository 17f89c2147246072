//! The Kubernetes-style envelope every manifest shares (`apiVersion`, `kind`, `metadata`,
//! `spec`), the three kinds, and references between objects.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only API version this build understands.
pub const API_VERSION: &str = "llama-orch.dev/v1alpha1";

/// The kinds of object a manifest can declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    /// How to run an inference engine (image, args, health probe, API flavour).
    Engine,
    /// A model artifact (reference, digest, context size).
    Model,
    /// N replicas of one engine serving one model on a set of GPUs.
    Pool,
}

impl Kind {
    /// All kinds, in dependency order (a Pool refers to an Engine and a Model).
    pub const ALL: [Kind; 3] = [Kind::Engine, Kind::Model, Kind::Pool];

    /// The kind's name as written in manifests (`Engine`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Engine => "Engine",
            Kind::Model => "Model",
            Kind::Pool => "Pool",
        }
    }

    /// Lower-case singular used by the CLI and URLs (`engine`).
    pub fn lower(self) -> &'static str {
        match self {
            Kind::Engine => "engine",
            Kind::Model => "model",
            Kind::Pool => "pool",
        }
    }

    /// Parses `Pool`, `pool`, `pools` or `po`-style CLI spellings.
    pub fn parse_loose(s: &str) -> Option<Kind> {
        match s.to_ascii_lowercase().as_str() {
            "engine" | "engines" => Some(Kind::Engine),
            "model" | "models" => Some(Kind::Model),
            "pool" | "pools" => Some(Kind::Pool),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one object: kind and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ObjectRef {
    /// The object's kind.
    pub kind: Kind,
    /// The object's `metadata.name`.
    pub name: String,
}

impl ObjectRef {
    /// Builds a reference.
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.lower(), self.name)
    }
}

/// `metadata`: the object's name and free-form labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectMeta {
    /// Unique per kind; a DNS label: lower-case letters, digits and `-`, 1–40 characters,
    /// starting with a letter and not ending with `-`.
    #[schemars(length(max = crate::validate::MAX_NAME_CHARS), pattern(crate::validate::NAME_PATTERN))]
    pub name: String,
    /// Free-form labels for people and tools; llama-orch does not interpret them. Kubernetes'
    /// rules: at most 64; a key is `[prefix/]name`, a value is empty or a name of 1–63
    /// letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = crate::validate::MAX_LABELS,
        "propertyNames" = { "pattern": crate::validate::LABEL_KEY_PATTERN },
        "additionalProperties" = { "type": "string", "pattern": crate::validate::LABEL_VALUE_PATTERN }
    ))]
    pub labels: BTreeMap<String, String>,
}

/// Implemented by each kind's `spec` type.
pub trait Spec: Clone + fmt::Debug + PartialEq + Serialize + for<'de> Deserialize<'de> + JsonSchema {
    /// The kind this spec belongs to.
    const KIND: Kind;
}

/// A manifest: envelope plus the kind's `spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(bound = "S: JsonSchema")]
pub struct Object<S> {
    /// Always `llama-orch.dev/v1alpha1`.
    pub api_version: String,
    /// `Engine`, `Model` or `Pool`, matching the spec.
    pub kind: Kind,
    /// Name and labels.
    pub metadata: ObjectMeta,
    /// The kind-specific desired state.
    pub spec: S,
}

impl<S: Spec> Object<S> {
    /// Builds an object with the current API version.
    pub fn new(name: impl Into<String>, spec: S) -> Self {
        Self {
            api_version: API_VERSION.to_string(),
            kind: S::KIND,
            metadata: ObjectMeta {
                name: name.into(),
                labels: BTreeMap::new(),
            },
            spec,
        }
    }

    /// This object's reference.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::new(S::KIND, self.metadata.name.clone())
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

/// Any one of the three kinds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnyObject {
    /// An Engine.
    Engine(crate::Engine),
    /// A Model.
    Model(crate::Model),
    /// A Pool.
    Pool(crate::Pool),
}

impl AnyObject {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            AnyObject::Engine(_) => Kind::Engine,
            AnyObject::Model(_) => Kind::Model,
            AnyObject::Pool(_) => Kind::Pool,
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        match self {
            AnyObject::Engine(o) => o.name(),
            AnyObject::Model(o) => o.name(),
            AnyObject::Pool(o) => o.name(),
        }
    }

    /// `metadata.labels`.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        match self {
            AnyObject::Engine(o) => &o.metadata.labels,
            AnyObject::Model(o) => &o.metadata.labels,
            AnyObject::Pool(o) => &o.metadata.labels,
        }
    }

    /// The object's reference.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::new(self.kind(), self.name())
    }

    /// The object as a JSON value (for hashing, diffs and `-o json`).
    pub fn to_json(&self) -> serde_json::Value {
        // Serialising plain data structures to a `Value` cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
