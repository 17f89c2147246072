//! `orchctl plan` over every file in examples/engines/ (llama.cpp, vLLM, TGI, SGLang), with
//! no daemon and one simulated 24 GiB GPU from the config: each plans its Pool without a
//! missing object, a blocked mask, a refused replica or a warning; and the llama.cpp example
//! without `--n-gpu-layers` gets the offload warning.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::{Home, examples};

/// A home whose config simulates one 24 GiB GPU; nothing listens on port 9.
fn home() -> Home {
    let home = Home::new("http://127.0.0.1:9");
    let config = std::fs::read_to_string(home.config()).unwrap();
    std::fs::write(
        home.config(),
        format!("{config}gpus:\n  simulate:\n    - {{name: Simulated RTX 3090, vramBytes: 25769803776}}\n"),
    )
    .unwrap();
    home
}

fn engine_examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples().join("engines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// What in a plan means the Pool would not run as declared.
const TROUBLE: [&str; 5] = [
    "MISSING",
    "cannot be placed",
    "blocks this Pool",
    "not placed",
    "warnings:",
];

#[test]
fn every_engine_example_plans_its_pool_without_errors_or_warnings() {
    let home = home();
    let files = engine_examples();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["llamacpp.yaml", "sglang.yaml", "tgi.yaml", "vllm.yaml"]);
    for file in &files {
        let ran = home.run_blocking(&["plan", "-f", &file.display().to_string()]);
        assert_eq!(ran.code, 0, "{}: {ran:?}", file.display());
        let pool = format!("chat-{}", file.file_stem().unwrap().to_string_lossy());
        assert!(
            ran.out.starts_with(&format!("Plan for pool/{pool} ")),
            "{}: {}",
            file.display(),
            ran.out
        );
        assert!(
            ran.out.contains("  replica 0: container "),
            "{}: {}",
            file.display(),
            ran.out
        );
        for trouble in TROUBLE {
            assert!(
                !ran.out.contains(trouble),
                "{}: `{trouble}` in\n{}",
                file.display(),
                ran.out
            );
        }
    }
}

#[test]
fn the_llamacpp_example_without_gpu_layers_is_warned_about() {
    let home = home();
    let original = std::fs::read_to_string(examples().join("engines/llamacpp.yaml")).unwrap();
    let stripped = original.replace("    - --n-gpu-layers\n    - \"999\"\n", "");
    assert_ne!(
        stripped, original,
        "the example passes --n-gpu-layers 999 as two list items"
    );
    let file = home.input_file("llamacpp.yaml", &stripped);
    let ran = home.run_blocking(&["plan", "-f", &file]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.out.contains(
            "warnings:\n  - engine `llamacpp` (pool `chat-llamacpp`) offloads no layers to the GPU: llama-server \
             computes on the CPU unless told; add `--n-gpu-layers 999` to its args\n"
        ),
        "{}",
        ran.out
    );
}
