#!/usr/bin/env bash
# Formatting, clippy (warnings are errors), rustdoc (broken links are errors).
set -euo pipefail

# The common part of the three sync shims must stay byte-identical (each crate
# carries its own copy: the crates are independent).
common_shim() {
    sed -n '/^\/\/ --- common shim: keep identical/,/^\/\/ --- end common shim ---$/p' "$1"
}
reference="$(common_shim src/sync.rs)"
if [ -z "$reference" ]; then
    echo "src/sync.rs: no common shim block (marker comments missing)" >&2
    exit 1
fi
for shim in gp/src/sync.rs pool/src/sync.rs; do
    if ! diff -u <(printf '%s\n' "$reference") <(common_shim "$shim") >&2; then
        echo "$shim: the common shim block differs from src/sync.rs's (keep them identical)" >&2
        exit 1
    fi
done
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
