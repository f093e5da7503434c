#!/usr/bin/env bash
# The portable fallbacks that macOS, Windows and FreeBSD use, tested on
# Linux: `--cfg kvfree_portable` turns off the Linux fast paths (membarrier
# readers, the worker's futex, sched_getcpu), so the readers use the
# fence(SeqCst) flavour, the worker sleeps with std's thread parking, and
# every thread's CPU hint is 0. Then the whole test suite of the three
# library crates runs: unit tests (rcu's flavour test asserts the fence
# flavour here), integration, stress and torture tests, doctests. Release
# build (the context checker is compiled away, as in the second
# `cargo test` of .ci/run) with a reduced stress scale, to keep this second
# full run short. Own target dir: the cfg changes every crate.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${PORTABLE_TARGET_DIR:-target/portable}"
export RUSTFLAGS="--cfg kvfree_portable ${RUSTFLAGS:-}"
export RUSTDOCFLAGS="--cfg kvfree_portable ${RUSTDOCFLAGS:-}"
export KVFREE_STRESS_SCALE="${KVFREE_STRESS_SCALE:-0.5}"
cargo test --release -p kvfree-rcu -p kvfree-rcu-gp -p kvfree-rcu-pool
