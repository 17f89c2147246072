//! afl.rs target `manifest`. The harness is `llorch_manifests::fuzzing::manifest_files`, through which `cargo test`
//! also replays this target's corpus; `scripts/fuzz.sh` builds and runs the target.

fn main() {
    afl::fuzz!(|data: &[u8]| llorch_manifests::fuzzing::manifest_files(data));
}
