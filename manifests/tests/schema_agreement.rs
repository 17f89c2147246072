//! The JSON Schemas under `schemas/` and the validator (`parse_file`, which runs
//! `check_object`) give every document the same verdict: valid or invalid. Fed: the
//! end-to-end bad-input corpus (`e2e/src/bad_input.rs`), the manifest fuzz corpus and its
//! regressions (`fuzz/corpus/manifest`, `fuzz/regressions/manifest`), the examples, and a
//! case on each side of every limit.
//!
//! What a JSON Schema cannot say is listed below, rule by rule ([`VALIDATOR_ONLY`],
//! [`FILE_LEVEL`], [`CROSS_OBJECT`]): a document may be refused by the validator and pass the
//! schema only for one of those reasons, and never the other way round.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../e2e/src/bad_input.rs"]
mod bad_input;

use std::collections::BTreeMap;
use std::path::Path;

use llorch_manifests::{ManifestError, parse_file};
use serde_json::Value;

/// Rules inside one document that the validator alone enforces: `(field, what the message
/// says, why a schema cannot)`.
const VALIDATOR_ONLY: &[(&str, &str, &str)] = &[
    (
        "spec.ref",
        "",
        "a Model's `ref` is parsed (file:, hf:org/repo[/file], https://, http:// to loopback hosts \
         only, IPv6 brackets), not matched",
    ),
    (
        "spec.scaling.idleTimeout",
        "",
        "a duration is text read by jiff (`90s`, `1m30s`); its format and its 1s–24h bounds are the \
         validator's",
    ),
    (
        "spec.scaling.minReplicas",
        "is above maxReplicas",
        "one field bounded by another",
    ),
    (
        "spec.restart.backoffMaxMs",
        "is below backoffInitialMs",
        "one field bounded by another",
    ),
    (
        "spec.tensorSplit",
        "weights for",
        "its length equals `gpusPerReplica`, one field bounded by another",
    ),
    (
        "metadata.labels",
        "prefix longer than 253",
        "a label key prefix's 253-character limit over all its DNS labels",
    ),
];

/// Rules about a file before any document is read: not JSON, so no schema sees them.
const FILE_LEVEL: &[&str] = &[
    "at most 1 MiB",
    "no NUL bytes (binary data)",
    "valid UTF-8",
    "YAML syntax, including alias bombs and deep nesting",
    "indentation with spaces, not tabs",
    "no unsupported YAML tags (`!!python/object`)",
    "a regular file: no FIFO, device, symlink loop or dangling symlink (the file reader's rules)",
];

/// Rules across objects (`check_set`): each schema sees one document.
const CROSS_OBJECT: &[&str] = &[
    "names are unique per kind",
    "a Pool's `engine` and `model` name objects that exist",
    "a Pool's `ctxSize` is at most its Model's `ctxMax`",
    "a Pool on an `external` Engine has at most 1 replica",
];

fn schemas() -> Vec<(String, jsonschema::Validator)> {
    llorch_manifests::schema::all()
        .into_iter()
        .filter(|(name, _)| name != &"config.schema.json")
        .map(|(name, schema)| (name.to_string(), jsonschema::validator_for(&schema).unwrap()))
        .collect()
}

/// Every input file: `(name, bytes)`.
fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for case in bad_input::corpus() {
        match case.body {
            bad_input::Body::Text(t) => out.push((format!("e2e:{}", case.name), t.into_bytes())),
            bad_input::Body::Bytes(b) => out.push((format!("e2e:{}", case.name), b)),
            // Special files are the file reader's to refuse (FILE_LEVEL); no bytes to judge.
            _ => {}
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["fuzz/corpus/manifest", "fuzz/regressions/manifest"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            // As the fuzz harness reads them: files split at NUL.
            for (i, part) in bytes.split(|&b| b == 0).take(4).enumerate() {
                out.push((format!("{}#{i}", path.display()), part.to_vec()));
            }
        }
    }
    for dir in ["examples", "examples/engines"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    for (name, text) in limit_cases() {
        out.push((format!("limit:{name}"), text.into_bytes()));
    }
    out
}

/// A document on each side of every limit the schemas carry.
fn limit_cases() -> Vec<(String, String)> {
    use bad_input::{engine, model, pool};
    let e = "image: 'x:1', version: '1'";
    let p = "engine: e1, model: m1";
    let m = "ref: 'file:/m.gguf'";
    let digest = "a".repeat(64);
    let cases: Vec<(&str, String)> = vec![
        ("replicas-16", pool(&format!("{p}, replicas: 16"))),
        ("replicas-17", pool(&format!("{p}, replicas: 17"))),
        ("replicas-100", pool(&format!("{p}, replicas: 100"))),
        (
            "replicas-and-scaling",
            pool(&format!("{p}, replicas: 1, scaling: {{}}")),
        ),
        ("neither-replicas-nor-scaling", pool(p)),
        ("scaling-max-0", pool(&format!("{p}, scaling: {{maxReplicas: 0}}"))),
        ("scaling-max-16", pool(&format!("{p}, scaling: {{maxReplicas: 16}}"))),
        ("scaling-max-17", pool(&format!("{p}, scaling: {{maxReplicas: 17}}"))),
        (
            "scaling-min-over-max",
            pool(&format!("{p}, scaling: {{minReplicas: 3, maxReplicas: 2}}")),
        ),
        ("idle-timeout-0s", pool(&format!("{p}, scaling: {{idleTimeout: 0s}}"))),
        (
            "idle-timeout-soon",
            pool(&format!("{p}, scaling: {{idleTimeout: soon}}")),
        ),
        (
            "gpus-per-replica-0",
            pool(&format!("{p}, replicas: 1, gpusPerReplica: 0")),
        ),
        (
            "gpus-per-replica-8",
            pool(&format!("{p}, replicas: 1, gpusPerReplica: 8")),
        ),
        (
            "gpus-per-replica-9",
            pool(&format!("{p}, replicas: 1, gpusPerReplica: 9")),
        ),
        ("slots-0", pool(&format!("{p}, replicas: 1, slotsPerReplica: 0"))),
        ("slots-256", pool(&format!("{p}, replicas: 1, slotsPerReplica: 256"))),
        ("slots-257", pool(&format!("{p}, replicas: 1, slotsPerReplica: 257"))),
        ("ctx-size-0", pool(&format!("{p}, replicas: 1, ctxSize: 0"))),
        (
            "tensor-split-ok",
            pool(&format!("{p}, replicas: 1, gpusPerReplica: 2, tensorSplit: [2, 1]")),
        ),
        (
            "tensor-split-one-gpu",
            pool(&format!("{p}, replicas: 1, tensorSplit: [2, 1]")),
        ),
        (
            "tensor-split-length",
            pool(&format!("{p}, replicas: 1, gpusPerReplica: 3, tensorSplit: [2, 1]")),
        ),
        (
            "tensor-split-zero",
            pool(&format!("{p}, replicas: 1, gpusPerReplica: 2, tensorSplit: [0, 1]")),
        ),
        (
            "tensor-split-1001",
            pool(&format!("{p}, replicas: 1, gpusPerReplica: 2, tensorSplit: [1001, 1]")),
        ),
        ("gpus-list", pool(&format!("{p}, replicas: 1, gpus: [0, 1]"))),
        ("queue-0", pool(&format!("{p}, replicas: 1, queue: {{capacity: 0}}"))),
        (
            "queue-100000",
            pool(&format!("{p}, replicas: 1, queue: {{capacity: 100000}}")),
        ),
        (
            "queue-100001",
            pool(&format!("{p}, replicas: 1, queue: {{capacity: 100001}}")),
        ),
        (
            "backoff-9",
            pool(&format!("{p}, replicas: 1, restart: {{backoffInitialMs: 9}}")),
        ),
        (
            "backoff-max-below",
            pool(&format!(
                "{p}, replicas: 1, restart: {{backoffInitialMs: 500, backoffMaxMs: 400}}"
            )),
        ),
        (
            "circuit-0",
            pool(&format!("{p}, replicas: 1, restart: {{circuitBreakerFailures: 0}}")),
        ),
        (
            "ttl-3600",
            pool(&format!("{p}, replicas: 1, sessions: {{ttlSeconds: 3600}}")),
        ),
        (
            "ttl-3601",
            pool(&format!("{p}, replicas: 1, sessions: {{ttlSeconds: 3601}}")),
        ),
        ("turns-0", pool(&format!("{p}, replicas: 1, sessions: {{maxTurns: 0}}"))),
        (
            "turns-1001",
            pool(&format!("{p}, replicas: 1, sessions: {{maxTurns: 1001}}")),
        ),
        (
            "budget-0",
            pool(&format!("{p}, replicas: 1, sessions: {{tokenBudget: 0}}")),
        ),
        ("engine-ref-bad", pool("engine: E1, model: m1, replicas: 1")),
        (
            "name-40",
            pool(&format!("{p}, replicas: 1")).replace("name: p1", &format!("name: p{}", "a".repeat(39))),
        ),
        (
            "name-41",
            pool(&format!("{p}, replicas: 1")).replace("name: p1", &format!("name: p{}", "a".repeat(40))),
        ),
        (
            "name-trailing-dash",
            pool(&format!("{p}, replicas: 1")).replace("name: p1", "name: p1-"),
        ),
        (
            "name-digit-first",
            pool(&format!("{p}, replicas: 1")).replace("name: p1", "name: 1p"),
        ),
        (
            "labels-ok",
            model(&format!("{m}, ctxMax: 8")).replace(
                "{name: m1}",
                "{name: m1, labels: {team: ml, example.com/tier: gold-1, e: ''}}",
            ),
        ),
        (
            "label-value-long",
            model(&format!("{m}, ctxMax: 8")).replace(
                "{name: m1}",
                &format!("{{name: m1, labels: {{team: {}}}}}", "v".repeat(64)),
            ),
        ),
        (
            "label-key-dash",
            model(&format!("{m}, ctxMax: 8")).replace("{name: m1}", "{name: m1, labels: {'-team': x}}"),
        ),
        (
            "label-prefix-space",
            model(&format!("{m}, ctxMax: 8")).replace("{name: m1}", "{name: m1, labels: {'bad prefix/x': v}}"),
        ),
        (
            "label-prefix-254",
            model(&format!("{m}, ctxMax: 8")).replace(
                "{name: m1}",
                &format!(
                    "{{name: m1, labels: {{'{}/x': v}}}}",
                    vec!["a".repeat(63); 4].join(".") + ".aa"
                ),
            ),
        ),
        (
            "labels-65",
            model(&format!("{m}, ctxMax: 8")).replace(
                "{name: m1}",
                &format!(
                    "{{name: m1, labels: {{{}}}}}",
                    (0..65).map(|i| format!("k{i}: v")).collect::<Vec<_>>().join(", ")
                ),
            ),
        ),
        (
            "digest-ok",
            model(&format!("{m}, ctxMax: 8, digest: 'sha256:{digest}'")),
        ),
        ("digest-md5", model(&format!("{m}, ctxMax: 8, digest: 'md5:abc'"))),
        (
            "digest-short",
            model(&format!("{m}, ctxMax: 8, digest: 'sha256:{}'", &digest[1..])),
        ),
        ("ctx-max-0", model(&format!("{m}, ctxMax: 0"))),
        ("vram-0", model(&format!("{m}, ctxMax: 8, vramBytes: 0"))),
        ("ref-hf-bad", model("ref: 'hf:onlyorg', ctxMax: 8")),
        ("engine-ok", engine(e)),
        ("engine-image-space", engine("image: 'x 1', version: '1'")),
        ("engine-version-blank", engine("image: 'x:1', version: ' '")),
        ("engine-port-0", engine(&format!("{e}, port: 0"))),
        (
            "engine-args-ok",
            engine(&format!(
                "{e}, args: ['--m', '{{model_path}}', '--split={{tensor_split}}']"
            )),
        ),
        (
            "engine-args-unclosed",
            engine(&format!("{e}, extraArgs: ['--x={{port']")),
        ),
        ("engine-env-bad", engine(&format!("{e}, env: {{'A=B': x}}"))),
        (
            "engine-health-interval-49",
            engine(&format!("{e}, health: {{intervalMs: 49}}")),
        ),
        (
            "engine-health-timeout-50",
            engine(&format!("{e}, health: {{timeoutMs: 50}}")),
        ),
        (
            "engine-health-startup-999",
            engine(&format!("{e}, health: {{startupTimeoutMs: 999}}")),
        ),
        (
            "engine-health-threshold-0",
            engine(&format!("{e}, health: {{failureThreshold: 0}}")),
        ),
        (
            "engine-external-ok",
            engine("provisioning: external, url: 'http://127.0.0.1:8081', version: '1'"),
        ),
        ("engine-external-no-url", engine("provisioning: external, version: '1'")),
        (
            "engine-external-image",
            engine("provisioning: external, url: 'http://h:1', image: x, version: '1'"),
        ),
        (
            "engine-external-ftp",
            engine("provisioning: external, url: 'ftp://h', version: '1'"),
        ),
        (
            "engine-binary-ok",
            engine("provisioning: binary, executable: llama-server, version: '1'"),
        ),
        (
            "engine-binary-blank",
            engine("provisioning: binary, executable: ' ', version: '1'"),
        ),
        ("engine-container-url", engine(&format!("{e}, url: 'http://h:1'"))),
        (
            "engine-source-ok",
            engine("provisioning: source, source: {repo: r, ref: b1}, version: '1'"),
        ),
        (
            "engine-source-target-dotdot",
            engine("provisioning: source, source: {repo: r, ref: b1, target: '..'}, version: '1'"),
        ),
        (
            "engine-source-target-path",
            engine("provisioning: source, source: {repo: r, ref: b1, target: 'bin/x'}, version: '1'"),
        ),
        (
            "engine-source-ref-blank",
            engine("provisioning: source, source: {repo: r, ref: ''}, version: '1'"),
        ),
        (
            "engine-package-ok",
            engine("provisioning: package, package: {name: llama.cpp}, version: '1'"),
        ),
        ("engine-package-missing", engine("provisioning: package, version: '1'")),
    ];
    cases.into_iter().map(|(n, t)| (n.to_string(), t)).collect()
}

/// The rule an error falls under, when it is one the validator alone enforces.
fn validator_only(e: &ManifestError) -> Option<&'static str> {
    let field = e.field.as_deref().unwrap_or_default();
    if field == "metadata.labels" && e.message.contains("is not a label key") {
        // Only for a prefix over 253 characters: every other key rule is in the schema.
        let key = e.message.split('`').nth(1).unwrap_or_default();
        let prefix = key.split_once('/').map(|(p, _)| p).unwrap_or_default();
        return (prefix.len() > 253).then_some(VALIDATOR_ONLY[5].2);
    }
    VALIDATOR_ONLY
        .iter()
        .find(|(f, needle, _)| *f == field && e.message.contains(needle))
        .map(|(_, _, why)| *why)
}

#[derive(Default, Debug)]
struct Tally {
    documents: usize,
    agreed_valid: usize,
    agreed_invalid: usize,
    validator_only: BTreeMap<&'static str, usize>,
    file_level: usize,
}

#[test]
fn the_schemas_and_the_validator_agree_on_every_document_of_the_bad_input_corpus() {
    let schemas = schemas();
    let mut tally = Tally::default();
    let mut disagreements = Vec::new();
    for (name, bytes) in inputs() {
        let errors = match parse_file(&name, &bytes) {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        };
        if errors.iter().any(|e| e.document.is_none()) {
            // Refused before any document was read: FILE_LEVEL.
            tally.file_level += 1;
            continue;
        }
        let text = std::str::from_utf8(&bytes).unwrap();
        let options = serde_saphyr::options! { reject_unsupported_tags: true };
        let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options).unwrap();
        for (index, doc) in docs.iter().enumerate() {
            tally.documents += 1;
            let refused: Vec<&ManifestError> = errors.iter().filter(|e| e.document == Some(index)).collect();
            let schema_ok = schemas.iter().any(|(_, v)| v.is_valid(doc));
            if name.starts_with("limit:") && std::env::var_os("AGREEMENT_DEBUG").is_some() {
                eprintln!("{name}: validator {} schema {schema_ok}", refused.is_empty());
            }
            match (refused.is_empty(), schema_ok) {
                (true, true) => tally.agreed_valid += 1,
                (false, false) => tally.agreed_invalid += 1,
                (false, true) => {
                    let reasons: Vec<Option<&str>> = refused.iter().map(|e| validator_only(e)).collect();
                    if reasons.iter().all(Option::is_some) {
                        for why in reasons.into_iter().flatten() {
                            *tally.validator_only.entry(why).or_default() += 1;
                        }
                    } else {
                        let errs: Vec<String> = refused.iter().map(|e| e.to_string()).collect();
                        disagreements.push(format!(
                            "{name} document {index}: the schema accepts what the validator refuses: {errs:?}"
                        ));
                    }
                }
                (true, false) => {
                    let why: Vec<String> = schemas
                        .iter()
                        .filter(|(n, _)| {
                            doc.get("kind")
                                .and_then(Value::as_str)
                                .is_some_and(|k| n.starts_with(&k.to_lowercase()))
                        })
                        .flat_map(|(_, v)| {
                            v.iter_errors(doc)
                                .map(|e| format!("{}: {e}", e.instance_path()))
                                .collect::<Vec<_>>()
                        })
                        .collect();
                    disagreements.push(format!(
                        "{name} document {index}: the schema refuses what the validator accepts: {why:?}"
                    ));
                }
            }
        }
    }
    eprintln!("{tally:#?}\nfile-level rules: {FILE_LEVEL:?}\ncross-object rules: {CROSS_OBJECT:?}");
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(tally.documents >= 250, "{tally:?}");
    assert!(tally.agreed_invalid >= 80 && tally.agreed_valid >= 50, "{tally:?}");
    assert!(tally.file_level >= 10, "{tally:?}");
}

#[test]
fn every_schema_has_a_stable_published_id() {
    for (name, schema) in llorch_manifests::schema::all() {
        assert_eq!(
            schema["$id"],
            format!("https://llama-orch.dev/schemas/v1alpha1/{name}"),
            "{name}"
        );
    }
}

#[test]
fn the_limits_from_the_issue_fail_the_schema() {
    let schemas = schemas();
    let pool_schema = &schemas.iter().find(|(n, _)| n == "pool.schema.json").unwrap().1;
    let model_schema = &schemas.iter().find(|(n, _)| n == "model.schema.json").unwrap().1;
    let doc = |yaml: String| -> Value { serde_saphyr::from_str(&yaml).unwrap() };
    let p = "engine: e1, model: m1";
    assert!(pool_schema.is_valid(&doc(bad_input::pool(&format!("{p}, replicas: 2")))));
    assert!(!pool_schema.is_valid(&doc(bad_input::pool(&format!("{p}, replicas: 100")))));
    assert!(!pool_schema.is_valid(&doc(bad_input::pool(&format!("{p}, replicas: 1, gpusPerReplica: 0")))));
    assert!(!model_schema.is_valid(&doc(bad_input::model("ref: 'file:/m', ctxMax: 8, digest: 'md5:abc'"))));
}
