//! Fuzz harnesses: the bodies of the coverage-guided targets in `fuzz/` (afl.rs), kept here so
//! that `cargo test` replays their corpora through the same code without afl
//! (`tests/fuzz_corpus.rs`). Each takes arbitrary bytes, runs the real parser and what the
//! daemon does next with the result, and panics only when a property it checks is broken.
//!
//! Not an API: hidden from the docs, and it must not hold logic of its own beyond splitting
//! the input and checking properties.
#![allow(clippy::panic)]

use crate::meta::AnyObject;
use crate::parse::{Located, MAX_MANIFEST_BYTES, parse_file};
use crate::validate::{check_object, check_set};
use crate::{ServingContract, hash};

/// Manifest files per input: enough for duplicates and references across files.
pub const MAX_FILES: usize = 4;

/// The manifest target. The input is split at NUL bytes into up to [`MAX_FILES`] files (a NUL
/// never occurs in a manifest: the parser refuses it); each is parsed as the manifests
/// directory would be, what parses is validated as one set, and every accepted object is
/// hashed, resolved and written back as JSON the way the controller does.
///
/// Properties: a refused file names at least one error; an accepted object passes the field
/// checks again; it survives the JSON rewrite of `reload --model` (`manifest_edit::rewrite`:
/// JSON is YAML) unchanged.
pub fn manifest_files(data: &[u8]) {
    let mut set: Vec<Located> = Vec::new();
    for (i, bytes) in data.split(|&b| b == 0).take(MAX_FILES).enumerate() {
        match parse_file(&format!("fuzz-{i}.yaml"), bytes) {
            Ok(objects) => set.extend(objects),
            Err(errors) => {
                assert!(!errors.is_empty(), "a refused file must say why");
                errors.iter().for_each(|e| consume(e.to_string()));
            }
        }
    }
    for error in check_set(&set) {
        consume(error.to_string());
    }
    for loc in &set {
        assert!(check_object(&loc.object).is_empty(), "{:?} was accepted", loc.object);
        consume(hash::short_hash(&loc.object));
        let json = serde_json::to_string_pretty(&loc.object.to_json()).unwrap_or_default();
        // JSON escapes can make the rewrite larger than a manifest may be; that is refused.
        if json.len() <= MAX_MANIFEST_BYTES {
            match parse_file("rewritten.yaml", json.as_bytes()).as_deref() {
                Ok([again]) => assert_eq!(again.object, loc.object, "the JSON rewrite changed it:\n{json}"),
                other => panic!("the JSON rewrite of an accepted object does not parse back: {other:?}\n{json}"),
            }
        }
        resolve(loc, &set);
    }
}

/// What the controller derives from a Pool whose Engine and Model exist.
fn resolve(loc: &Located, set: &[Located]) {
    let AnyObject::Pool(pool) = &loc.object else { return };
    let engine = set.iter().find_map(|l| match &l.object {
        AnyObject::Engine(e) if e.metadata.name == pool.spec.engine => Some(e),
        _ => None,
    });
    let model = set.iter().find_map(|l| match &l.object {
        AnyObject::Model(m) if m.metadata.name == pool.spec.model => Some(m),
        _ => None,
    });
    if let (Some(engine), Some(model)) = (engine, model) {
        consume(model.spec.parse_ref().map_err(|e| e.to_string()));
        let contract = ServingContract::resolve(&pool.spec, &engine.spec, &model.spec, None);
        consume(hash::short_hash(&contract));
    }
    consume(pool.spec.gpus.select(&[0, 1, 2, 3]));
}

/// Uses `value`, so the work that made it is not optimised away.
fn consume<T>(value: T) {
    drop(std::hint::black_box(value));
}
