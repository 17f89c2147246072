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

/// The comment that tells an editor (yaml-language-server) which schema checks a file.
pub const MODELINE_PREFIX: &str = "# yaml-language-server: $schema=";

/// The schema a `# yaml-language-server: $schema=<target>` line in `text` names, if any.
pub fn modeline_target(text: &str) -> Option<&str> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix('#')?.trim_start();
        let rest = rest.strip_prefix("yaml-language-server:")?.trim_start();
        let target = rest.strip_prefix("$schema=")?.trim();
        (!target.is_empty()).then_some(target)
    })
}

/// The modeline for a file that holds one object of `kind`: the user's `target` when it names
/// this kind's schema file where any editor finds it (a URL or an absolute path), else the
/// published `$id`.
pub fn modeline_for(kind: crate::Kind, user: Option<&str>) -> String {
    let file = file_of(kind);
    let usable = |t: &&str| {
        let located = ["https://", "http://", "file://", "/"].iter().any(|p| t.starts_with(p));
        located && t.ends_with(&file) && !t.contains(|c: char| c.is_control() || c.is_whitespace())
    };
    match user.filter(usable) {
        Some(target) => format!("{MODELINE_PREFIX}{target}"),
        None => format!("{MODELINE_PREFIX}{}", id(&file)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    #[test]
    fn a_modeline_keeps_the_users_schema_for_its_kind_else_names_the_published_one() {
        let text = "# yaml-language-server: $schema=https://example.com/s/pool.schema.json\nkind: Pool\n";
        assert_eq!(modeline_target(text), Some("https://example.com/s/pool.schema.json"));
        assert_eq!(modeline_target("kind: Pool\n"), None);
        assert_eq!(
            modeline_for(Kind::Pool, modeline_target(text)),
            "# yaml-language-server: $schema=https://example.com/s/pool.schema.json"
        );
        let published = "# yaml-language-server: $schema=https://llama-orch.dev/schemas/v1alpha1/engine.schema.json";
        assert_eq!(
            modeline_for(Kind::Engine, modeline_target(text)),
            published,
            "another kind's schema"
        );
        assert_eq!(
            modeline_for(Kind::Engine, Some("../schemas/engine.schema.json")),
            published,
            "relative"
        );
        assert_eq!(
            modeline_for(Kind::Engine, Some("/opt/llama-orch/schemas/engine.schema.json")),
            "# yaml-language-server: $schema=/opt/llama-orch/schemas/engine.schema.json"
        );
    }
}
