//! The main job (issue 6).
fn main() {}
