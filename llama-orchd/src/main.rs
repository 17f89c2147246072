//! llama-orchd (skeleton).

fn main() {}
