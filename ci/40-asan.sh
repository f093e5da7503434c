#!/usr/bin/env bash
# AddressSanitizer over the stress and torture tests of the three crates:
# use-after-free, double free, overflows and leaks in the protocols and in the
# harnesses. Needs nightly + rust-src (ci/setup.sh). Sizes shrink through
# KVFREE_STRESS_SCALE. Own target dir: std is rebuilt instrumented once.
# Leaks are fatal except the tests' deliberate ones listed in ci/lsan.supp.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${ASAN_TARGET_DIR:-target/asan}"
export RUSTFLAGS="-Zsanitizer=address ${RUSTFLAGS:-}"
export RUSTDOCFLAGS="-Zsanitizer=address"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$(pwd)/ci/lsan.supp:print_suppressions=0}"
export KVFREE_STRESS_SCALE="${KVFREE_STRESS_SCALE:-0.25}"
target=x86_64-unknown-linux-gnu
run() { echo "-- asan: $*"; cargo +nightly test -Zbuild-std --target "$target" "$@"; }

# One cargo invocation for the three crates: the root crate's torture,
# signals, the stall, faults, readers, service, re-entry, unwinding, fork and
# `LocalRetirer` tests, and the engines' stress tests (`--test stress` picks
# the gp and pool crates' own). One invocation builds the shared
# dependencies once; a command per crate resolved their features apart and
# built them again.
run -p kvfree-rcu -p kvfree-rcu-gp -p kvfree-rcu-pool \
    --test torture --test signals --test realtime --test faults --test readers \
    --test service --test reentry --test unwinding --test fork --test local \
    --test stress
