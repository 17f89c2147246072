//! `orchctl explain pool.spec.scaling`: the help for one manifest or config field, read from
//! the JSON Schemas orchctl was built with (`llorch_manifests::schema`, the same as the
//! committed `schemas/`): its type, whether it is required, its default, limits and allowed
//! values, its description, and its fields — like `kubectl explain`.
//!
//! Pure reading of a schema value: no config, no daemon, no files.

use std::fmt::Write as _;

use anyhow::{anyhow, bail};
use serde_json::Value;

use crate::Io;
use crate::cli::ExplainArgs;
use llorch_manifests::{API_VERSION, Kind, schema};

/// Width descriptions are wrapped to.
const WIDTH: usize = 80;

/// `orchctl explain`.
pub fn run(args: &ExplainArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let text = explain(&args.path)?;
    io.out.write_all(text.as_bytes())?;
    Ok(0)
}

/// The help text for a dotted path such as `pool.spec.scaling`.
pub fn explain(path: &str) -> anyhow::Result<String> {
    let mut segments = path.split('.').filter(|s| !s.is_empty());
    let head = segments.next().unwrap_or_default();
    let (kind_line, file) = match Kind::parse_loose(head) {
        Some(kind) => (
            format!("KIND:     {kind}\nVERSION:  {API_VERSION}\n"),
            schema::file_of(kind),
        ),
        None if head.eq_ignore_ascii_case("config") => {
            ("FILE:     config.yaml\n".to_string(), "config.schema.json".into())
        }
        None => bail!(
            "unknown kind `{head}`: explain one of engine, model, pool or config, e.g. `orchctl explain pool.spec`"
        ),
    };
    let (_, root) = schema::all()
        .into_iter()
        .find(|(name, _)| *name == file)
        .ok_or_else(|| anyhow!("no schema {file} in this build"))?;
    let mut node = Node::of(&root, &root, head.to_lowercase(), true);
    let mut walked = head.to_lowercase();
    for segment in segments {
        let children = node.children();
        let Some(child) = children.into_iter().find(|c| c.name == segment) else {
            let names: Vec<String> = node.children().into_iter().map(|c| c.name).collect();
            if names.is_empty() {
                bail!("`{walked}` is {} and has no fields", article(&node.type_name()));
            }
            bail!(
                "field `{segment}` does not exist in `{walked}`; its fields are: {}",
                names.join(", ")
            );
        };
        walked.push('.');
        walked.push_str(segment);
        node = child;
    }
    Ok(render(&kind_line, &walked, &node))
}

fn article(type_name: &str) -> String {
    let vowel = type_name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {type_name}", if vowel { "an" } else { "a" })
}

/// One field: its own schema (the property as written, with its description and default) and
/// what that resolves to (through `$ref` and `Option`'s `anyOf` with null).
struct Node<'a> {
    name: String,
    root: &'a Value,
    own: &'a Value,
    resolved: &'a Value,
    required: bool,
}

impl<'a> Node<'a> {
    fn of(root: &'a Value, own: &'a Value, name: String, required: bool) -> Node<'a> {
        Node {
            name,
            root,
            own,
            resolved: resolve(root, own),
            required,
        }
    }

    fn description(&self) -> Option<&'a str> {
        self.own
            .get("description")
            .or_else(|| self.resolved.get("description"))
            .and_then(Value::as_str)
    }

    fn type_name(&self) -> String {
        type_name(self.root, self.own)
    }

    /// The fields below this one, in the schema's (alphabetical) order.
    fn children(&self) -> Vec<Node<'a>> {
        let object = match self.resolved.get("items") {
            Some(items) if self.resolved.get("properties").is_none() => resolve(self.root, items),
            _ => self.resolved,
        };
        let required: Vec<&str> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        object
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(name, own)| Node::of(self.root, own, name.clone(), required.contains(&name.as_str())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `default`, limits and allowed values, one line each.
    fn facts(&self) -> Vec<String> {
        let mut out = Vec::new();
        // An object's default is its fields' defaults, shown on each of them.
        if let Some(d) = self.own.get("default").filter(|d| !d.is_object()) {
            out.push(format!("default: {}", compact(d)));
        }
        let limits = limits(self.root, self.own);
        if !limits.is_empty() {
            out.push(format!("limits: {}", limits.join(", ")));
        }
        let values = values(self.root, self.own);
        if !values.is_empty() {
            out.push(format!("values: {}", values.join(", ")));
        }
        out
    }
}

/// `$ref` followed, and an `anyOf` of one schema and null reduced to the schema.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    if let Some(target) = node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| root.get("$defs")?.get(name))
    {
        return resolve(root, target);
    }
    if let Some(branches) = node.get("anyOf").and_then(Value::as_array) {
        let real: Vec<&Value> = branches.iter().filter(|b| !is_null(b)).collect();
        if let [one] = real.as_slice() {
            return resolve(root, one);
        }
    }
    node
}

fn is_null(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("null")
}

fn type_name(root: &Value, node: &Value) -> String {
    if node.get("const").is_some() {
        return "string".into();
    }
    let node = resolve(root, node);
    if let Some(branches) = node.get("anyOf").and_then(Value::as_array) {
        let names: Vec<String> = branches
            .iter()
            .filter(|b| !is_null(b))
            .map(|b| type_name(root, b))
            .collect();
        return names.join(" | ");
    }
    if let Some(branches) = node.get("oneOf").and_then(Value::as_array)
        && node.get("type").is_none()
    {
        let mut names: Vec<String> = Vec::new();
        for name in branches.iter().map(|b| type_name(root, b)) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        return names.join(" | ");
    }
    let ty = match node.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("any")
            .to_string(),
        _ => "any".into(),
    };
    match ty.as_str() {
        "array" => format!("[]{}", node.get("items").map_or("any".into(), |i| type_name(root, i))),
        "object" if node.get("properties").is_none() => match node.get("additionalProperties") {
            Some(v @ Value::Object(_)) => format!("map[string]{}", type_name(root, v)),
            _ => "object".into(),
        },
        _ => ty,
    }
}

/// Limits a schema sets: ranges, lengths, patterns, item bounds.
fn limits(root: &Value, node: &Value) -> Vec<String> {
    let node = resolve(root, node);
    let mut out = Vec::new();
    let unsigned = node
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| f.starts_with("uint"));
    let num = |k: &str| node.get(k).and_then(Value::as_u64);
    match (num("minimum"), num("maximum")) {
        (Some(lo), Some(hi)) => out.push(format!("{lo} to {hi}")),
        (Some(0), None) if unsigned => {}
        (Some(lo), None) => out.push(format!("at least {lo}")),
        (None, Some(hi)) => out.push(format!("at most {hi}")),
        (None, None) => {}
    }
    if let Some(n) = num("maxLength") {
        out.push(format!("at most {n} characters"));
    }
    if let Some(p) = node.get("pattern").and_then(Value::as_str) {
        out.push(format!("matches {p}"));
    }
    if let Some(n) = num("minItems") {
        out.push(format!("at least {n} item(s)"));
    }
    if node.get("uniqueItems") == Some(&Value::Bool(true)) {
        out.push("each item once".into());
    }
    if let Some(n) = num("maxProperties") {
        out.push(format!("at most {n} entries"));
    }
    if let Some(p) = node.pointer("/propertyNames/pattern").and_then(Value::as_str) {
        out.push(format!("keys match {p}"));
    }
    if let Some(items) = node.get("items") {
        let inner = limits(root, items);
        if !inner.is_empty() {
            out.push(format!("each item: {}", inner.join(", ")));
        }
    }
    out
}

/// The allowed values of an enum (`oneOf` or `anyOf` branches that are constants).
fn values(root: &Value, node: &Value) -> Vec<String> {
    let node = resolve(root, node);
    if let Some(c) = node.get("const") {
        return vec![compact(c)];
    }
    let mut out = Vec::new();
    for key in ["oneOf", "anyOf"] {
        for branch in node.get(key).and_then(Value::as_array).into_iter().flatten() {
            out.extend(values(root, branch));
        }
    }
    out
}

/// A JSON value on one line; strings without quotes.
fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render(kind_line: &str, path: &str, node: &Node<'_>) -> String {
    let mut out = String::new();
    let required = if node.required && path.contains('.') {
        " -required-"
    } else {
        ""
    };
    let _ = writeln!(out, "{kind_line}\nFIELD:    {path} <{}>{required}", node.type_name());
    for fact in node.facts() {
        let _ = writeln!(out, "{}", label(&fact));
    }
    if let Some(d) = node.description() {
        let _ = writeln!(out, "\nDESCRIPTION:");
        wrap(&mut out, d, 4);
    }
    let children = node.children();
    if !children.is_empty() {
        let _ = writeln!(out, "\nFIELDS:");
        for (i, child) in children.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let required = if child.required { " -required-" } else { "" };
            let _ = writeln!(out, "  {} <{}>{required}", child.name, child.type_name());
            for fact in child.facts() {
                let _ = writeln!(out, "    {fact}");
            }
            if let Some(d) = child.description() {
                wrap(&mut out, d, 4);
            }
        }
    }
    out
}

/// `default: 1` as `DEFAULT:  1`, aligned under `FIELD:`.
fn label(fact: &str) -> String {
    match fact.split_once(": ") {
        Some((key, value)) => format!("{:<10}{value}", format!("{}:", key.to_uppercase())),
        None => fact.to_string(),
    }
}

/// `text` re-flowed (its source lines joined) and wrapped at [`WIDTH`] with `indent` spaces.
fn wrap(out: &mut String, text: &str, indent: usize) {
    let pad = " ".repeat(indent);
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > WIDTH {
            let _ = writeln!(out, "{pad}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{pad}{line}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_leaf_shows_its_type_default_and_limits() {
        let text = explain("pool.spec.scaling.maxReplicas").unwrap();
        assert!(
            text.contains("FIELD:    pool.spec.scaling.maxReplicas <integer>"),
            "{text}"
        );
        assert!(text.contains("DEFAULT:  1"), "{text}");
        assert!(text.contains("LIMITS:   1 to 16"), "{text}");
    }

    #[test]
    fn enums_list_their_values_and_unknown_fields_list_the_valid_ones() {
        let text = explain("pool.spec.queue.fullPolicy").unwrap();
        assert!(text.contains("VALUES:   reject, drop-lru"), "{text}");
        let err = explain("pool.spec.scalling").unwrap_err().to_string();
        assert!(
            err.starts_with("field `scalling` does not exist in `pool.spec`; its fields are: "),
            "{err}"
        );
        assert!(err.contains("scaling"), "{err}");
        let err = explain("pool.spec.replicas.x").unwrap_err().to_string();
        assert_eq!(err, "`pool.spec.replicas` is an integer and has no fields");
        assert!(
            explain("deployment")
                .unwrap_err()
                .to_string()
                .contains("engine, model, pool or config")
        );
    }
}
