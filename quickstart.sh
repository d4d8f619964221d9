#!/usr/bin/env bash
# loghaul quick start on Debian 12:
#   ./quickstart.sh demo   install what is missing, build, run a demo on loopback
#   ./quickstart.sh test   install what is missing, build, run every test suite
# Tests run twice: a -Werror build, then an AddressSanitizer+UBSan build (all
# but the hostile soak, which runs once); then every libFuzzer harness gets a
# short pass in a clang build.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential cmake pkg-config git python3 openssl curl bsdutils
          libevent-dev libmsgpack-dev libyaml-dev libssl-dev check libsubunit-dev
          zlib1g-dev libpcre2-dev libzstd-dev libjansson-dev libyajl-dev libxxhash-dev
          librdkafka-dev clang libclang-rt-14-dev
          dpkg-dev file rpm systemd rsyslog rsyslog-openssl)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_deps() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    # The interop tests run an independent Forward client (fluent-logger on
    # Node.js). Debian's npm conflicts with nodejs builds that bundle npm.
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}"
    fi
}

build() { # build DIR [cmake options...]
    local dir=$1
    shift
    cmake -S . -B "$dir" -DLOGHAUL_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j2
}

install_interop_peers() {
    [ -d tests/interop/node_modules/fluent-logger ] ||
        (cd tests/interop && npm install --no-package-lock --no-audit --no-fund --loglevel=error)
}

run_tests() { # run_tests DIR [ctest options...]
    local dir=$1
    shift
    (cd "$dir" && ctest --output-on-failure --timeout 600 -j2 "$@") | tee "$dir/ctest.log"
}

# One closing line for the whole run: ctest's counts of both builds plus the
# fuzzers' (each ctest run has already failed the script if a test failed).
summary() { # summary CTEST_LOG... (fuzz counts in FUZZ_PASSED)
    local total=0 n
    for log in "$@"; do
        n=$(sed -nE 's/.* tests failed out of ([0-9]+)$/\1/p' "$log" | tail -1)
        total=$((total + ${n:-0}))
    done
    echo "all: $((total + FUZZ_PASSED)) passed, 0 failed"
}

case "${1:-}" in
demo)
    install_deps
    build build
    exec ./scripts/demo.sh build
    ;;
test)
    install_deps
    install_interop_peers
    echo "== build (-Werror)"
    build build
    echo "== tests"
    run_tests build
    echo "== build (ASan + UBSan)"
    build build-asan -DLOGHAUL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    echo "== tests under ASan + UBSan"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        run_tests build-asan -LE soak
    echo "== fuzzers (20 s each on their seed corpora)"
    ./scripts/fuzz.sh 20
    FUZZ_PASSED=$(ls tests/fuzz/fuzz_*.c | wc -l) summary build/ctest.log build-asan/ctest.log
    ;;
*)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
