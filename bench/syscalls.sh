#!/usr/bin/env bash
# Counts the syscalls that the RETIRING threads of one flood configuration
# make during their alloc + retire loop, under strace, and prints them by
# syscall name with the rate per million retires.
#
#   bench/syscalls.sh [SCHEME [THREADS [OBJECTS]]]
#
#   SCHEME   kvfree-headed (default), kvfree-headless, call-rcu,
#            crossbeam-epoch, liburcu (needs FEATURES=liburcu), floor, direct
#   THREADS  retiring threads (default 1)
#   OBJECTS  objects each thread allocates and retires (default 2000000)
#
# Environment: FEATURES="mimalloc" (or "liburcu", ...) builds the bench with
# those features; KEEP=DIR keeps the traces in DIR; BENCH_EXE=PATH uses an
# already built main-job executable instead of building one.
#
# How: the main job's `--one SCHEME --threads N` runs the one configuration
# in its own process; `--mark-loop` makes each retiring thread write
# "flood-loop-start tid=N" to stderr just before its loop and
# "flood-loop-end tid=N" just after (one write each), and `--syscalls off`
# keeps the in-process perf counter (which reads its count with syscalls)
# out of the way. strace -f -ff writes one file per thread; the script
# takes the files of the threads that wrote a start marker and counts the
# syscalls between the two markers. Everything else (the worker, the main
# thread, thread start-up and exit) is summed on one line for context.
#
# strace stops the process at every syscall, so the run is slower than a
# real one and timing-dependent counts (wake-ups) can differ; the main
# job's syscalls column (a perf counter, no stops) is the measurement, this
# is the breakdown by name. Needs strace (Debian: apt-get install strace).
set -euo pipefail

scheme="${1:-kvfree-headed}"
threads="${2:-1}"
objects="${3:-2000000}"

if ! command -v strace >/dev/null 2>&1; then
    echo "syscalls.sh: strace not found; install it (Debian: apt-get install strace)" >&2
    exit 1
fi

# shellcheck source=bench/bench-exe.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-exe.sh"

if [[ -n "${KEEP:-}" ]]; then
    dir="$KEEP"
    mkdir -p "$dir"
else
    dir="$(mktemp -d)"
    trap 'rm -rf "$dir"' EXIT
fi
rm -f "$dir"/trace.*

strace -f -ff -qq -o "$dir/trace" \
    "$exe" --one "$scheme" --threads "$threads" --objects "$objects" --loops 1 \
    --syscalls off --mark-loop >"$dir/result.json" 2>"$dir/stderr"

mapfile -t tids < <(sed -n 's/.*flood-loop-start tid=\([0-9][0-9]*\).*/\1/p' "$dir/stderr")
if [[ ${#tids[@]} -ne "$threads" ]]; then
    echo "syscalls.sh: expected $threads loop start marker(s) on stderr, found ${#tids[@]}:" >&2
    cat "$dir/stderr" >&2
    exit 1
fi
retires=$((threads * objects))

retiring_files=()
for tid in "${tids[@]}"; do
    retiring_files+=("$dir/trace.$tid")
done
other_files=()
for f in "$dir"/trace.*; do
    case " ${retiring_files[*]} " in
        *" $f "*) ;;
        *) other_files+=("$f") ;;
    esac
done

echo "Syscalls of the $threads retiring thread(s) (TIDs ${tids[*]}) in their loops:"
echo "$scheme, $threads thread(s) x $objects objects = $retires retires, under strace"
# Per file: count the syscall lines strictly between the two markers. A line
# is "name(args) = result"; signal lines (---), exit lines (+++) and
# resumed halves (<...) are not new syscalls.
awk -v retires="$retires" '
    FNR == 1 { inside = 0 }
    /flood-loop-start tid=/ { inside = 1; next }
    /flood-loop-end tid=/ { inside = 0; next }
    inside && /^[a-z_0-9]+\(/ {
        name = substr($0, 1, index($0, "(") - 1)
        count[name]++
        total++
    }
    END {
        printf "%-24s %10s %16s\n", "syscall", "count", "per 1M retires"
        n = 0
        for (name in count) names[++n] = name
        # sort by count, descending (insertion sort: a handful of names)
        for (i = 2; i <= n; i++) {
            v = names[i]
            for (j = i - 1; j >= 1 && count[names[j]] < count[v]; j--) names[j + 1] = names[j]
            names[j + 1] = v
        }
        for (i = 1; i <= n; i++)
            printf "%-24s %10d %16.2f\n", names[i], count[names[i]], count[names[i]] * 1e6 / retires
        printf "%-24s %10d %16.2f\n", "total", total, total * 1e6 / retires
    }
' "${retiring_files[@]}"

other=0
if [[ ${#other_files[@]} -gt 0 ]]; then
    other=$(cat "${other_files[@]}" | grep -cE '^[a-z_0-9]+\(' || true)
fi
echo "(other threads, whole run: ${#other_files[@]} thread(s), $other syscalls)"
if [[ -n "${KEEP:-}" ]]; then
    echo "traces kept in $dir"
fi
