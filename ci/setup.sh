#!/usr/bin/env bash
# Installs what a fresh machine lacks. Idempotent; every later script may assume it ran.
set -euo pipefail
rustup component add --toolchain nightly miri rust-src >/dev/null
rustup component add clippy rustfmt >/dev/null
cargo +nightly miri setup >/dev/null 2>&1 || cargo +nightly miri setup
