#!/usr/bin/env bash
# The benchmark crate cannot rot: the main job with tiny arguments (a few
# seconds, results in a temporary directory) and every criterion bench once
# (`--test` mode runs each benchmark a single time).
set -euo pipefail
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo run --release -p kvfree-rcu-bench -- \
    --threads 1,2 --objects 1000 --loops 2 --seconds 0.05 --latency-calls 5000 --quiet --out "$out"
test -s "$out/flood.json" && test -s "$out/flood.svg"
cargo bench -p kvfree-rcu-bench -- --test
