//! orchctl (skeleton).

fn main() {}
