#!/usr/bin/env bash
# The benchmark crate cannot rot: the main job in `--quick` mode (threads
# 1 and 2, 100 000 objects per thread, one fresh-process run per
# configuration, 5 000 latency calls: a few seconds, results in a temporary
# directory) and every criterion bench once (`--test` mode runs each
# benchmark a single time).
set -euo pipefail
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo run --release -p kvfree-rcu-bench -- --quick --quiet --out "$out"
test -s "$out/flood.json" && test -s "$out/flood.svg"
cargo bench -p kvfree-rcu-bench -- --test
