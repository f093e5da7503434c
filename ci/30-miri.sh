#!/usr/bin/env bash
# Miri over the unit tests of the three crates (sizes shrink under cfg(miri)).
set -euo pipefail
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
for pkg in kvfree-rcu-gp kvfree-rcu-pool kvfree-rcu; do
    echo "-- miri: $pkg"
    cargo +nightly miri test -p "$pkg" --lib
done
# Integration tests small enough for Miri (they size themselves with cfg!(miri)).
echo "-- miri: kvfree-rcu-gp --test api"
cargo +nightly miri test -p kvfree-rcu-gp --test api
