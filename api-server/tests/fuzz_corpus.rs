//! Replays the corpora and regressions of the fuzz targets whose harnesses live in this crate
//! (`fuzz/corpus/<target>`, `fuzz/regressions/<target>`) without afl, so every input the fuzzer
//! kept keeps passing under plain `cargo test`. `scripts/fuzz.sh` runs the fuzzer.

#![allow(clippy::unwrap_used)]

use std::path::Path;

/// Feeds every input of `target` to `harness`; a panic names the file on stderr first.
fn replay(target: &str, harness: fn(&[u8])) {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz"));
    let mut seen = 0;
    for dir in [root.join("corpus").join(target), root.join("regressions").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            eprintln!("{}", path.display());
            harness(&bytes);
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} inputs for fuzz target `{target}`");
}

#[test]
fn every_config_corpus_and_regression_input_passes_the_harness() {
    replay("config", llorch_api::fuzzing::config);
}

#[test]
fn every_task_request_corpus_and_regression_input_passes_the_harness() {
    replay("task_request", llorch_api::fuzzing::task_request);
}

#[test]
fn every_openai_request_corpus_and_regression_input_passes_the_harness() {
    replay("openai_request", llorch_api::fuzzing::openai_request);
}

#[test]
fn every_engine_sse_corpus_and_regression_input_passes_the_harness() {
    replay("engine_sse", llorch_api::fuzzing::engine_sse);
}
