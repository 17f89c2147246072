//! JSON Schemas for the manifest kinds and the config file, as committed under `schemas/`.
//! `cargo run -p llama-orch-manifests --bin gen-schemas` writes them; a test fails when the
//! committed files drift from the types.

use schemars::{JsonSchema, schema_for};
use serde_json::{Value, json};

use crate::config::Config;
use crate::meta::{API_VERSION, Object, Spec};
use crate::{EngineSpec, ModelSpec, PoolSpec};

/// `(file name, schema)` for every generated schema.
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("engine.schema.json", kind_schema::<EngineSpec>()),
        ("model.schema.json", kind_schema::<ModelSpec>()),
        ("pool.schema.json", kind_schema::<PoolSpec>()),
        ("config.schema.json", plain::<Config>("llama-orch config file")),
    ]
}

fn plain<T: JsonSchema>(title: &str) -> Value {
    let mut v = serde_json::to_value(schema_for!(T)).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("title".into(), json!(title));
    }
    v
}

/// The envelope's schema with `apiVersion` and `kind` pinned to constants, so an editor
/// flags a Pool written into an Engine file.
fn kind_schema<S: Spec>() -> Value {
    let mut v = plain::<Object<S>>(&format!("llama-orch {} manifest", S::KIND));
    if let Some(props) = v.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            "apiVersion".into(),
            json!({ "const": API_VERSION, "description": "Always `llama-orch.dev/v1alpha1`." }),
        );
        props.insert("kind".into(), json!({ "const": S::KIND.as_str() }));
    }
    v
}
