#!/usr/bin/env bash
# Formatting, clippy (warnings are errors), rustdoc (broken links are errors).
set -euo pipefail
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
