#!/usr/bin/env bash
# The library crates build on the MSRV stated in Cargo.toml (rust-version).
# The benchmark crate (unpublished) is not held to it.
set -euo pipefail
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
rustup toolchain install "$msrv" --profile minimal >/dev/null
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/msrv}" \
    cargo +"$msrv" check -p kvfree-rcu -p kvfree-rcu-gp -p kvfree-rcu-pool --lib --all-features
echo "MSRV $msrv: the library crates build"
