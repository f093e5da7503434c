#!/usr/bin/env bash
# The library crates type-check on every platform they ship on, not just the
# Linux x86-64 machine CI runs on: Linux aarch64, macOS, Windows, FreeBSD.
# `-Zbuild-std` builds std for each target from rust-src (ci/setup.sh), so
# no target needs installing. `check` only: no linking, so no C cross
# toolchain is needed (and no dependency may need a C compiler for the
# target in a build script). Own target dir: std is checked once per target.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${TARGETS_TARGET_DIR:-target/targets}"
targets=(
    aarch64-unknown-linux-gnu
    x86_64-apple-darwin
    x86_64-pc-windows-msvc
    x86_64-unknown-freebsd
)
# `bash ci/16-targets.sh TARGET...` checks only those.
if [ "$#" -gt 0 ]; then targets=("$@"); fi
# One cargo invocation for every target: while one target's std is in a
# long single-threaded step (core), the other CPU checks another target's.
target_args=()
for target in "${targets[@]}"; do target_args+=(--target "$target"); done
start=$(date +%s)
echo "-- check: ${targets[*]}"
# All features: the epoch adapter and the context checker are platform code
# too. Lints as in ci/10-lint.sh: a warning on any target fails.
RUSTFLAGS="-D warnings ${RUSTFLAGS:-}" cargo +nightly check -Zbuild-std=std,panic_abort \
    "${target_args[@]}" -p kvfree-rcu -p kvfree-rcu-gp -p kvfree-rcu-pool --lib --all-features
echo "-- check: ${#targets[@]} targets took $(($(date +%s) - start)) s"
