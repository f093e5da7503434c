#!/usr/bin/env bash
# ThreadSanitizer over the stress and torture tests. `--cfg kvfree_tsan`
# makes the crates use TSan-visible synchronisation where they would rely on
# fences (the gp crate's readers use fence(SeqCst) instead of a compiler
# fence + membarrier()). TSan does not model fences, so any report is
# investigated against the design (docs/TESTING.md); there is no suppression
# file.
# The signal test is not run here: TSan defers signal delivery and flags any
# handler work as "signal-unsafe call" noise; ASan runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${TSAN_TARGET_DIR:-target/tsan}"
export RUSTFLAGS="-Zsanitizer=thread --cfg kvfree_tsan ${RUSTFLAGS:-}"
export RUSTDOCFLAGS="-Zsanitizer=thread --cfg kvfree_tsan"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
export KVFREE_STRESS_SCALE="${KVFREE_STRESS_SCALE:-0.1}"
target=x86_64-unknown-linux-gnu
run() { echo "-- tsan: $*"; cargo +nightly test -Zbuild-std --target "$target" "$@"; }

# One cargo invocation for the three crates (as in ci/40-asan.sh): the root
# crate's torture, the stall, faults, readers, service and `LocalRetirer`
# tests, and the engines' stress tests.
run -p kvfree-rcu -p kvfree-rcu-gp -p kvfree-rcu-pool \
    --test torture --test realtime --test faults --test readers --test service \
    --test local --test stress
