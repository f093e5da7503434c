#!/usr/bin/env bash
# Loom models of every lock-free protocol, all three crates built with
# --cfg kvfree_loom. The models must pass at LOOM_MAX_PREEMPTIONS=3: some
# ordering bugs only show there (a Relaxed re-entry announcement in
# gp/src/slot.rs passed at 2). Bounds per crate, chosen so that the whole
# step stays within a few minutes (times in docs/TESTING.md):
#   kvfree-rcu-gp    3           (exhaustive: concurrent_advancers > 5 min)
#   kvfree-rcu-pool  3           (exhaustive: two models > 5 min)
#   kvfree-rcu       exhaustive  (about a second)
# LOOM_MAX_PREEMPTIONS=N in the environment runs every crate at bound N.
set -euo pipefail
export RUSTFLAGS="--cfg kvfree_loom ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
override="${LOOM_MAX_PREEMPTIONS:-}"
unset LOOM_MAX_PREEMPTIONS

run() {
    local pkg=$1 bound=${override:-$2}
    echo "-- loom: $pkg (preemption bound: $bound)"
    cargo build --release -p "$pkg" --test loom
    local start
    start=$(date +%s)
    if [ "$bound" = exhaustive ]; then
        cargo test --release -p "$pkg" --test loom
    else
        LOOM_MAX_PREEMPTIONS="$bound" cargo test --release -p "$pkg" --test loom
    fi
    echo "-- loom: $pkg models took $(($(date +%s) - start)) s"
}

run kvfree-rcu-gp 3
run kvfree-rcu-pool 3
run kvfree-rcu exhaustive
# The service's internal protocols (the worker's idle handshake in
# src/wake.rs, the reclaim board in src/reclaim.rs: about 90 s, most of it
# the board's return-list model) are
# modelled in its unit tests: the lib's only tests built under loom.
echo "-- loom: kvfree-rcu internal models (exhaustive)"
cargo test --release -p kvfree-rcu --lib
