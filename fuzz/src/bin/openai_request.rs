//! afl.rs target `openai_request`. The harness is `llorch_api::fuzzing::openai_request`, through which `cargo test`
//! also replays this target's corpus; `scripts/fuzz.sh` builds and runs the target.

fn main() {
    afl::fuzz!(|data: &[u8]| llorch_api::fuzzing::openai_request(data));
}
