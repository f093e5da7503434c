//! Schemes compared by the main job and the criterion benches (issue 6 fills this in).
