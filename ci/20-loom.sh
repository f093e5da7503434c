#!/usr/bin/env bash
# Loom models of every lock-free protocol, all three crates built with --cfg kvfree_loom.
# A longer local run: LOOM_MAX_PREEMPTIONS=3 bash ci/20-loom.sh
set -euo pipefail
export RUSTFLAGS="--cfg kvfree_loom ${RUSTFLAGS:-}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
for pkg in kvfree-rcu-gp kvfree-rcu-pool kvfree-rcu; do
    echo "-- loom: $pkg (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS)"
    cargo test --release -p "$pkg" --test loom
done
