# Sourced by the bench/ scripts: sets `exe` to the main job's executable.
# BENCH_EXE=PATH uses an already built one; otherwise the release build is
# made (or brought up to date) here, with FEATURES="mimalloc" (or
# "liburcu", ...) as its features.
bench_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${BENCH_EXE:-}" ]]; then
    exe="$BENCH_EXE"
else
    features=()
    if [[ -n "${FEATURES:-}" ]]; then
        features=(--features "$FEATURES")
    fi
    (cd "$bench_root" && cargo build --quiet --release -p kvfree-rcu-bench "${features[@]}")
    exe="${CARGO_TARGET_DIR:-$bench_root/target}/release/kvfree-rcu-bench"
fi
