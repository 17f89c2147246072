//! The GGUF reader and VRAM estimate against GGUF files made by someone else: small files of
//! several shapes written by the PyPI `gguf` package (GGUFWriter) and the real SmolLM2-135M
//! model, each with expectations computed in Python by GGUFReader
//! (scripts/gguf/make_fixtures.py). Weights must be within 5% of the sum of tensor sizes (ours
//! are exact), the shape numbers exact, and the KV cache the documented formula.
//!
//! The fixtures come from `LLORCH_GGUF_FIXTURES`, else
//! `${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}/gguf-fixtures`; scripts/test.sh makes them.
//! Missing fixtures are a failure, never a skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use llorch_gguf::{estimate, read_summary};
use serde_json::Value;

const FIXTURES_ENV: &str = "LLORCH_GGUF_FIXTURES";
const SMOLLM2_ENV: &str = "LLORCH_SMOLLM2_GGUF";
const HOW: &str = "Create them with:\n  python3 -m venv /tmp/gguf-venv && /tmp/gguf-venv/bin/pip install gguf==0.19.0\n  \
    /tmp/gguf-venv/bin/python scripts/gguf/make_fixtures.py /tmp/gguf-fixtures \
    --smollm2 \"$(bash scripts/build-llama-server-image.sh)\"\n  export LLORCH_GGUF_FIXTURES=/tmp/gguf-fixtures\n\
    (scripts/test.sh does this)";

fn fixtures_dir() -> PathBuf {
    if let Some(p) = std::env::var_os(FIXTURES_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("LLORCH_CACHE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is not set")).join(".cache/llama-orch-ci")
        });
    cache.join("gguf-fixtures")
}

fn expected() -> Vec<Value> {
    let dir = fixtures_dir();
    let path = dir.join("expected.json");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the GGUF fixtures are missing: cannot read {} ({e}; {FIXTURES_ENV} {}; CI={ci}).\n{HOW}",
            path.display(),
            if std::env::var_os(FIXTURES_ENV).is_some() {
                "is set"
            } else {
                "is not set"
            }
        )
    });
    let json: Value = serde_json::from_str(&text).unwrap();
    json["files"]
        .as_array()
        .expect("expected.json has a files array")
        .clone()
}

fn u64_of(e: &Value, key: &str) -> u64 {
    e[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{}: {key} is not a number in expected.json", e["label"]))
}

/// Checks one file against its Python expectations; returns a line for the test's output.
fn check(e: &Value) -> String {
    let label = e["label"].as_str().unwrap();
    let path = Path::new(e["path"].as_str().unwrap());
    let s = read_summary(path).unwrap_or_else(|err| panic!("{label}: {err}"));

    // Weights: within 5% of Python's sum of tensor n_bytes (the acceptance bar); ours is exact.
    let python_bytes = u64_of(e, "tensor_bytes");
    let ratio = s.tensor_bytes as f64 / python_bytes as f64;
    assert!(
        (0.95..=1.05).contains(&ratio),
        "{label}: weights {} vs {python_bytes}",
        s.tensor_bytes
    );
    assert_eq!(s.tensor_bytes, python_bytes, "{label}: tensor bytes");

    assert_eq!(s.architecture, e["architecture"].as_str().unwrap(), "{label}");
    let exact = [
        ("version", u64::from(s.version)),
        ("tensor_count", s.tensor_count),
        ("layers", u64::from(s.layers)),
        ("heads", u64::from(s.heads)),
        ("kv_heads", u64::from(s.kv_heads)),
        ("embedding_length", u64::from(s.embedding_length)),
        ("key_length", u64::from(s.key_length)),
        ("value_length", u64::from(s.value_length)),
        ("context_length", u64::from(s.context_length)),
        ("data_offset", s.data_offset),
        ("data_end", s.data_end),
    ];
    for (key, ours) in exact {
        assert_eq!(ours, u64_of(e, key), "{label}: {key}");
    }
    assert!(s.data_end <= u64_of(e, "file_size"), "{label}");

    // KV cache: layers × kv_heads × (key + value length) × 2 bytes (f16) per token, times the
    // whole --ctx-size, whatever the slot count.
    let kv = u64_of(e, "kv_bytes_per_token");
    assert_eq!(s.kv_bytes_per_token(), kv, "{label}: kv bytes per token");
    for (ctx, slots) in [(2048u32, 1u32), (8192, 4)] {
        let v = estimate(s.tensor_bytes, s.kv_bytes_per_token(), ctx, slots);
        assert_eq!(v.weights_bytes, python_bytes, "{label}");
        assert_eq!(v.kv_cache_bytes, kv * u64::from(ctx), "{label}: kv cache at ctx {ctx}");
        assert_eq!(
            v.total_bytes,
            v.weights_bytes + v.kv_cache_bytes + v.overhead_bytes,
            "{label}"
        );
    }
    let v = estimate(s.tensor_bytes, s.kv_bytes_per_token(), 2048, 1);
    format!(
        "{label}: {} tensors ({}), weights {} B (python {python_bytes} B), kv {kv} B/token; at ctx 2048: kv {} + overhead {} = {} B",
        s.tensor_count,
        e["tensor_types"].as_array().map_or(String::new(), |t| t
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",")),
        s.tensor_bytes,
        v.kv_cache_bytes,
        v.overhead_bytes,
        v.total_bytes
    )
}

#[test]
fn the_reader_matches_python_on_files_written_by_the_gguf_package() {
    let files: Vec<Value> = expected().into_iter().filter(|e| e["label"] != "smollm2").collect();
    assert!(
        files.len() >= 3,
        "expected.json lists {} generated files, want 3.\n{HOW}",
        files.len()
    );
    let mut types = std::collections::BTreeSet::new();
    for e in &files {
        println!("{}", check(e));
        types.extend(
            e["tensor_types"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned()),
        );
    }
    for t in ["F32", "F16", "Q8_0", "Q4_K", "BF16"] {
        assert!(types.contains(t), "no fixture has a {t} tensor: {types:?}");
    }
    // The shapes the fixtures are for: GQA and a custom alignment.
    assert!(
        files.iter().any(|e| u64_of(e, "kv_heads") < u64_of(e, "heads")),
        "no GQA fixture"
    );
    assert!(
        files.iter().any(|e| u64_of(e, "alignment") != 32),
        "no custom-alignment fixture"
    );
}

#[test]
fn the_reader_matches_python_on_the_real_smollm2_model() {
    let files = expected();
    let Some(e) = files.iter().find(|e| e["label"] == "smollm2") else {
        panic!("expected.json has no SmolLM2 entry: run make_fixtures.py with --smollm2.\n{HOW}");
    };
    if let Some(p) = std::env::var_os(SMOLLM2_ENV).filter(|p| !p.is_empty()) {
        let ours = std::fs::canonicalize(PathBuf::from(p)).unwrap();
        let theirs = std::fs::canonicalize(e["path"].as_str().unwrap()).unwrap();
        assert_eq!(
            ours, theirs,
            "expected.json was made for another SmolLM2 file than {SMOLLM2_ENV}"
        );
    }
    println!("{}", check(e));
    // What the model card says: 30 layers, 9 heads, 3 KV heads, 576 wide, 8192 context.
    assert_eq!(u64_of(e, "layers"), 30);
    assert_eq!((u64_of(e, "heads"), u64_of(e, "kv_heads")), (9, 3));
}
