#!/usr/bin/env bash
# Shows how one flood configuration's threads shared the CPUs: for each
# thread, the CPU time it got and the time it spent runnable but waiting
# for a CPU, then the producers' and the reclaim threads' totals and
# reclaim's share of the CPU time.
#
#   bench/thread-cpu.sh [SCHEME [THREADS [OBJECTS]]]
#
#   SCHEME   kvfree-headed (default), kvfree-headed-nice, kvfree-headless,
#            call-rcu, crossbeam-epoch, ... (the main job's --schemes names)
#   THREADS  retiring threads (default 8)
#   OBJECTS  objects each thread allocates and retires (default 2000000)
#
# Environment: FEATURES="mimalloc" (or "liburcu", ...) builds the bench with
# those features; BENCH_EXE=PATH uses an already built main-job executable
# instead of building one; INTERVAL=SECONDS sets the sampling interval
# (default 0.02).
#
# How: the main job's `--one SCHEME --threads N` runs the configuration in
# its own process, and this script reads /proc/PID/task/*/schedstat (CPU
# time, run-queue wait, time slices; Linux with schedstats) every INTERVAL
# until the process exits. A thread's figures are its last sample, so a
# thread that exits loses at most one interval. The retiring threads are
# named flood-N; kvfree-rcu's worker is `kvfree-rcu`, its helpers
# `kvfree-rcu-hN`. docs/BENCHMARKS.md ("Reclaim's share of the CPUs at 8
# threads, per thread") reads such a table.
set -euo pipefail

scheme="${1:-kvfree-headed}"
threads="${2:-8}"
objects="${3:-2000000}"
interval="${INTERVAL:-0.02}"

if [[ ! -r /proc/self/schedstat ]]; then
    echo "thread-cpu.sh: /proc/self/schedstat not found (Linux with schedstats only)" >&2
    exit 1
fi

# shellcheck source=bench/bench-exe.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-exe.sh"

"$exe" --one "$scheme" --threads "$threads" --objects "$objects" \
    --sample-every 0 >/dev/null &
pid=$!

declare -A name run waited slices
while kill -0 "$pid" 2>/dev/null; do
    for task in /proc/"$pid"/task/*; do
        tid="${task##*/}"
        # A thread may exit between the glob and the reads.
        if { read -r r w s <"$task/schedstat" && read -r c <"$task/comm"; } 2>/dev/null; then
            name[$tid]="$c"
            run[$tid]="$r"
            waited[$tid]="$w"
            slices[$tid]="$s"
        fi
    done
    sleep "$interval"
done
wait "$pid"

rows="$(for tid in $(printf '%s\n' "${!name[@]}" | sort -n); do
    awk -v c="${name[$tid]}" -v r="${run[$tid]}" -v w="${waited[$tid]}" -v s="${slices[$tid]}" \
        'BEGIN { printf "%-18s %10.1f %16.1f %8d\n", c, r / 1e6, w / 1e6, s }'
done)"

echo "$scheme, $threads thread(s), $objects objects each: CPU time per thread"
printf '%-18s %10s %16s %8s\n' thread "ran ms" "waited ms" slices
echo "$rows"
echo "$rows" | awk '
    $1 ~ /^flood-/ { producers += $2 }
    $1 ~ /^kvfree-rcu/ { reclaim += $2 }
    { total += $2 }
    END {
        printf "producers %.1f ms, kvfree-rcu reclaim threads %.1f ms, all %.1f ms: reclaim %.0f%% of the CPU time\n",
            producers, reclaim, total, (total > 0 ? 100 * reclaim / total : 0)
    }'
