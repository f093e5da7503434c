#!/usr/bin/env bash
# The benchmark crate cannot rot: the main job in `--quick` mode (threads
# 1 and 2, 100 000 objects per thread, one fresh-process run per
# configuration, 5 000 latency calls: a few seconds, results in a temporary
# directory), every criterion bench once (`--test` mode runs each
# benchmark a single time), and `bench/thread-cpu.sh` on a 2-thread flood
# (Linux: it reads /proc).
set -euo pipefail
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo run --release -p kvfree-rcu-bench -- --quick --quiet --out "$out"
test -s "$out/flood.json" && test -s "$out/flood.svg"
cargo bench -p kvfree-rcu-bench -- --test
if [[ -r /proc/self/schedstat ]]; then
    summary="$(INTERVAL=0.005 bench/thread-cpu.sh kvfree-headed 2 | tail -n 1)"
    echo "$summary"
    # The producers were sampled at least once with CPU time.
    [[ "$summary" =~ ^producers\ [1-9] ]]
fi
