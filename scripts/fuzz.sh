#!/usr/bin/env bash
# Builds every libFuzzer harness (tests/fuzz/fuzz_*.c) with clang, ASan and
# UBSan, then runs each on its seed corpus for SECONDS (default 20) and
# prints one line per harness: executions, coverage, new inputs found.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]
# Harness NAME reads tests/fuzz/corpus/NAME-without-fuzz_/ and writes what it
# discovers to BUILD/fuzz-out/NAME/, never into the source tree. A crash
# leaves its reproducer in BUILD/fuzz-out/ and fails the script. JOBS
# harnesses run at once (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-20}
shift || true
build=${FUZZ_BUILD:-build-fuzz}
jobs=${JOBS:-2}

if [ $# -gt 0 ]; then
    names=("$@")
else
    names=()
    for f in tests/fuzz/fuzz_*.c; do names+=("$(basename "$f" .c)"); done
fi

CC=clang cmake -S . -B "$build" -DLOGHAUL_FUZZ=ON -DLOGHAUL_WERROR=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target "${names[@]}"

# The store and chunkq harnesses write files and fsync them: on tmpfs they
# run some thirty times faster.
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

out="$build/fuzz-out"
mkdir -p "$out"

run_one() { # run_one NAME
    local name=$1 seeds="tests/fuzz/corpus/${1#fuzz_}"
    local dir="$out/$name" log="$out/$name.log"
    mkdir -p "$dir"
    local args=("$dir")
    [ -d "$seeds" ] && args+=("$seeds")
    if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        "$build/tests/fuzz/$name" "${args[@]}" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$out/$name-" -print_final_stats=1 >"$log" 2>&1; then
        echo "FAIL $name (see $log)"
        tail -40 "$log"
        return 1
    fi
    local done execs cov
    done=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    execs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$log")
    cov=$(sed -E -n 's/.*DONE[[:space:]]+cov: ([0-9]+) ft: ([0-9]+).*/cov \1 ft \2/p' <<<"$done")
    printf 'ok   %-16s %ss  %s execs  %s  corpus %s files\n' "$name" "$secs" "${execs:-?}" \
        "${cov:-?}" "$(find "$dir" -type f | wc -l)"
}

fail=0
pids=()
for name in "${names[@]}"; do
    run_one "$name" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$jobs" ]; then
        wait "${pids[0]}" || fail=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
exit $fail
