//! mock-engine (skeleton).

fn main() {}
