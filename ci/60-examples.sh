#!/usr/bin/env bash
# Runs every example (except torture, which has its own script) with small
# arguments. Debug profile (opt-level 1): the context checker is on, so the
# examples' "no allocation / no violation in atomic context" assertions are
# live. Each example asserts its own invariants and exits non-zero on failure.
set -euo pipefail
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/examples}"
features=(--features crossbeam-epoch)
examples=(
    "safe_map 100000"
    "hashmap 100000"
    "treiber_stack 100000"
    "local_flood 100000"
    "rt_producer 10000"
    "signal_handler 1000"
    "crossbeam_epoch 100000"
)
names=()
for e in "${examples[@]}"; do names+=(--example "${e%% *}"); done
cargo build -p kvfree-rcu "${features[@]}" "${names[@]}"
for e in "${examples[@]}"; do
    name="${e%% *}"
    args="${e#* }"
    echo "-- example: $name $args"
    # shellcheck disable=SC2086 # args are space-separated on purpose
    cargo run -q -p kvfree-rcu "${features[@]}" --example "$name" -- $args
done
