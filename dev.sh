#!/bin/bash
# The project's two entry points on a fresh Debian 12 machine, as root:
#   ./dev.sh demo   install dependencies, build, run the lab demo
#   ./dev.sh test   install dependencies, build (plain, ASan+UBSan, Release with gcc and with
#                   clang), run every ctest but those labelled slow
#   ./dev.sh test-slow  the slow tests: the fault campaign at N=100 (about 40 min)
# Also: ./dev.sh package (build-deb/*.deb), ./dev.sh deps | build | build-asan | build-release
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
JOBS=$(nproc)

log() { echo "== dev.sh: $*"; }

deps() {
    local missing=() p
    [ "$(id -u)" = 0 ] || { echo "dev.sh: run as root (apt-get, namespaces, cgroups)" >&2; exit 1; }
    while read -r p; do
        case $p in ''|'#'*) continue ;; esac
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done < cmake/debian-packages.txt
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        log "all Debian packages present"
    fi
}

build() {
    log "build (gcc, -Werror) in build/"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOS_WERROR=ON >/dev/null
    cmake --build build -j"$JOBS"
}

build_asan() {
    log "build (clang, ASan+UBSan, libFuzzer targets) in build-asan/"
    CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMOS_WERROR=ON \
        -DMOS_SANITIZE=ON -DMOS_FUZZ=ON >/dev/null
    cmake --build build-asan -j"$JOBS"
}

build_release() {
    # Optimised builds see warnings the plain and ASan trees never do (GCC 12's
    # maybe-uninitialized and stringop-* after inlining). Libraries and programs only: the
    # other trees run the tests.
    local cc
    for cc in gcc clang; do
        log "build (Release, $cc, -Werror, no tests) in build-release-$cc/"
        CC=$cc cmake -S . -B "build-release-$cc" -DCMAKE_BUILD_TYPE=Release -DMOS_WERROR=ON \
            -DMOS_TESTS=OFF >/dev/null
        cmake --build "build-release-$cc" -j"$JOBS"
    done
}

run_tests() {
    local rc=0
    log "ctest: every test of the plain build but the slow ones (./dev.sh test-slow)"
    ctest --test-dir build --output-on-failure --timeout 900 -LE slow || rc=1
    log "ctest: unit and fuzz tests under ASan+UBSan"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan --output-on-failure -L 'unit|fuzz' || rc=1
    return $rc
}

package() {
    log "Debian packages (mos, mos-dev) from a Release tree for /usr in build-deb/"
    cmake -S . -B build-deb -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DMOS_TESTS=OFF >/dev/null
    cmake --build build-deb -j"$JOBS"
    (cd build-deb && cpack -G DEB)
}

demo() {
    # The cluster demo: a 4-node lab (0.5 CPU each), 8 CPU-bound jobs started with mosrun on
    # node 1, the cluster view every 2 s while they spread, then the makespan with balancing,
    # without it (mosrun -L) and the ideal.
    log "demo: 4 lab nodes, 0.5 CPU each; 8 CPU-bound jobs start on node 1"
    build/bin/mosbench balance --nodes 4 --cpus-per-node 0.5 --jobs 8 --steps 150 --watch
}

case ${1:-} in
deps) deps ;;
build) deps; build ;;
build-asan) deps; build_asan ;;
build-release) deps; build_release ;;
test) deps; build; build_asan; build_release; run_tests ;;
test-slow) deps; build; ctest --test-dir build --output-on-failure -L slow ;;
demo) deps; build; demo ;;
package) deps; package ;;
*) echo "usage: ./dev.sh demo|test|test-slow|package|deps|build|build-asan|build-release" >&2; exit 2 ;;
esac
