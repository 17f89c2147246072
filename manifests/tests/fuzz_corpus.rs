//! Replays the manifest fuzz target's corpus and its regressions (`fuzz/corpus/manifest`,
//! `fuzz/regressions/manifest`) through the target's harness without afl, so every input the
//! fuzzer kept keeps passing under plain `cargo test`. `scripts/fuzz.sh` runs the fuzzer.

use std::path::Path;

#[test]
fn every_manifest_corpus_and_regression_input_passes_the_harness() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz"));
    let mut seen = 0;
    for dir in [root.join("corpus/manifest"), root.join("regressions/manifest")] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            eprintln!("{}", path.display());
            llorch_manifests::fuzzing::manifest_files(&bytes);
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} inputs under {}", root.display());
}
