//! examples/models/tiny.gguf is `fixture::tiny_model("llama")`, byte for byte. Regenerate it with
//! `cargo run -q -p llama-orch-gguf --bin gguf-tool -- tiny llama examples/models/tiny.gguf`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use llorch_gguf::fixture::tiny_model;

#[test]
fn the_committed_example_model_equals_the_generators_output() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/tiny.gguf");
    let committed = std::fs::read(&path).unwrap();
    assert!(
        committed == tiny_model("llama"),
        "{} differs from fixture::tiny_model(\"llama\"); regenerate it with \
         `cargo run -q -p llama-orch-gguf --bin gguf-tool -- tiny llama examples/models/tiny.gguf`",
        path.display()
    );
    let s = llorch_gguf::read_summary(&path).unwrap();
    assert_eq!(s.architecture, "llama");
}
