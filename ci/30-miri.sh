#!/usr/bin/env bash
# Miri over the unit tests of the three crates (sizes shrink under cfg(miri)),
# plus the integration tests small enough for Miri (the root's tests/api.rs).
set -euo pipefail
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
for pkg in kvfree-rcu-gp kvfree-rcu-pool; do
    echo "-- miri: $pkg"
    cargo +nightly miri test -p "$pkg" --lib
done
echo "-- miri: kvfree-rcu"
cargo +nightly miri test -p kvfree-rcu --lib --test api --test safe_layer
# Integration tests small enough for Miri (they size themselves with cfg!(miri)).
echo "-- miri: kvfree-rcu-gp --test api"
cargo +nightly miri test -p kvfree-rcu-gp --test api
