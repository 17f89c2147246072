//! JSON Schemas for the manifest kinds and the config file, as committed under `schemas/`.
//! `cargo run -p llama-orch-manifests --bin gen-schemas` writes them; a test fails when the
//! committed files drift from the types.
//!
//! The limits come from the types' `#[schemars(...)]` attributes (ranges, patterns, lengths),
//! next to the fields they bound; the rules between fields that JSON Schema can say
//! (provisioning modes, `replicas` or `scaling`) are added here. What a schema cannot say
//! (references between objects, durations, one field bounded by another) stays with the
//! validator, and `manifests/tests/schema_agreement.rs` lists it.

use schemars::{JsonSchema, schema_for};
use serde_json::{Value, json};

use crate::config::Config;
use crate::meta::{API_VERSION, Object, Spec};
use crate::{EngineSpec, ModelSpec, PoolSpec, Provisioning};

/// Where the schemas are published: a schema's `$id` is this followed by its file name, and
/// `orchctl apply` points the `yaml-language-server` modeline of the files it writes here.
pub const ID_BASE: &str = "https://llama-orch.dev/schemas/v1alpha1/";

/// `(file name, schema)` for every generated schema.
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        (
            "engine.schema.json",
            engine_rules(kind_schema::<EngineSpec>("engine.schema.json")),
        ),
        ("model.schema.json", kind_schema::<ModelSpec>("model.schema.json")),
        (
            "pool.schema.json",
            pool_rules(kind_schema::<PoolSpec>("pool.schema.json")),
        ),
        (
            "config.schema.json",
            plain::<Config>("config.schema.json", "llama-orch config file"),
        ),
    ]
}

/// The published URL of schema `file` (`pool.schema.json`).
pub fn id(file: &str) -> String {
    format!("{ID_BASE}{file}")
}

/// The schema file of a kind (`pool.schema.json`).
pub fn file_of(kind: crate::Kind) -> String {
    format!("{}.schema.json", kind.lower())
}

fn plain<T: JsonSchema>(file: &str, title: &str) -> Value {
    let mut v = serde_json::to_value(schema_for!(T)).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("$id".into(), json!(id(file)));
        m.insert("title".into(), json!(title));
    }
    v
}

/// The envelope's schema with `apiVersion` and `kind` pinned to constants, so an editor
/// flags a Pool written into an Engine file.
fn kind_schema<S: Spec>(file: &str) -> Value {
    let mut v = plain::<Object<S>>(file, &format!("llama-orch {} manifest", S::KIND));
    if let Some(props) = v.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            "apiVersion".into(),
            json!({ "const": API_VERSION, "description": "Always `llama-orch.dev/v1alpha1`." }),
        );
        props.insert("kind".into(), json!({ "const": S::KIND.as_str() }));
    }
    v
}

/// `$defs.<name>` of a schema, to add rules to.
fn def<'a>(schema: &'a mut Value, name: &str) -> Option<&'a mut serde_json::Map<String, Value>> {
    schema.get_mut("$defs")?.get_mut(name)?.as_object_mut()
}

/// Each provisioning mode needs its own field and no other mode's (`validate`'s
/// `check_provisioning`). A left-out `provisioning` is `container`.
fn engine_rules(mut schema: Value) -> Value {
    let modes = [
        (Provisioning::Container, "image"),
        (Provisioning::External, "url"),
        (Provisioning::Binary, "executable"),
        (Provisioning::Source, "source"),
        (Provisioning::Package, "package"),
    ];
    let rules: Vec<Value> = modes
        .iter()
        .map(|(mode, field)| {
            let condition = if *mode == Provisioning::Container {
                json!({ "properties": { "provisioning": { "const": mode.as_str() } } })
            } else {
                json!({ "properties": { "provisioning": { "const": mode.as_str() } }, "required": ["provisioning"] })
            };
            json!({
                "if": condition,
                "then": { "required": [field] },
                "else": { "not": { "required": [field] } }
            })
        })
        .collect();
    if let Some(spec) = def(&mut schema, "EngineSpec") {
        spec.insert("allOf".into(), Value::Array(rules));
    }
    schema
}

/// A Pool declares `replicas` or `scaling`, exactly one; `tensorSplit` needs `gpusPerReplica`
/// of 2 or more.
fn pool_rules(mut schema: Value) -> Value {
    if let Some(spec) = def(&mut schema, "PoolSpec") {
        spec.insert(
            "oneOf".into(),
            json!([{ "required": ["replicas"] }, { "required": ["scaling"] }]),
        );
        spec.insert(
            "dependentSchemas".into(),
            json!({ "tensorSplit": {
                "required": ["gpusPerReplica"],
                "properties": { "gpusPerReplica": { "minimum": 2 } }
            } }),
        );
    }
    schema
}
