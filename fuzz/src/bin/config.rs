//! afl.rs target `config`. The harness is `llorch_api::fuzzing::config`, through which `cargo test`
//! also replays this target's corpus; `scripts/fuzz.sh` builds and runs the target.

fn main() {
    afl::fuzz!(|data: &[u8]| llorch_api::fuzzing::config(data));
}
