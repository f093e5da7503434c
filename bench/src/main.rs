//! The main job (issue 6 fills this in).
fn main() {}
