#!/bin/bash
# The verbs backend for real: soft-RoCE (rdma_rxe) in qemu guests from ../shared/rxe-lab.
# One guest: the conformance suite (test_transport) with its verbs group on rxe0, then
# mos-transport-check server and client on rxe0 (loopback through the device),
# verbs forced, 1 and 2 bulk QPs, page sources and destinations in other processes, a process
# migrated with its pages in bulk over verbs (mosbench migrate --backend transport), a wrong
# key, auto picking verbs, the server dying mid-run, auto falling back to tcp where rdma_cm has
# no route, where `ulimit -l` is too small and where the RDMA port is down. Two guests
# (run2.sh): the same across a virtual wire. Usage: test_transport_rxe.sh SHARED_DIR
set -u
. "$(dirname "$0")/lib_check.sh"
SHARED=${1:-${MOS_SHARED_DIR:-}}
RXE=$SHARED/rxe-lab
GUEST=$(cd "$(dirname "$0")" && pwd)/rxe_transport.sh
export RXE_LAB_WORK=${RXE_LAB_WORK:-$(cd "$MOS_BIN/.." && pwd)/rxe-lab-work}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

if [ ! -x "$RXE/run.sh" ]; then
    bad "no rxe-lab at '$RXE' (set -DMOS_SHARED_DIR=... at configure time)"; finish; exit 1
fi
command -v qemu-system-x86_64 >/dev/null || { bad "qemu-system-x86_64 missing: apt-get install qemu-system-x86"; finish; exit 1; }
make_key "$T/cluster.key"; make_key "$T/other.key"
export RXE_BINS="$CHK $MOS_BIN/test_transport $MOS_BIN/mosbench $MOS_BIN/mos-husk" RXE_FILES="$T/cluster.key $T/other.key"

# Parse "RXE-LAB: TEST name PASS|FAIL" lines of a guest log into ok/FAIL lines.
report() { # LABEL LOG EXPECTED-TESTS...
    local label=$1 log=$2 t line; shift 2
    for t in "$@"; do
        line=$(grep -a "RXE-LAB: TEST $t " "$log" | tail -1)
        case $line in
        *" PASS "*) ok "$label: $t (${line##* })" ;;
        "") bad "$label: $t did not run (see $log)" ;;
        *) bad "$label: $t: ${line#*TEST }"; grep -a -A40 "===== $t" "$log" | head -60 ;;
        esac
    done
}

t0=$(date +%s)
TIMEOUT=400 "$RXE/run.sh" "$GUEST" check 4 > "$T/one.out" 2>&1
cp "$RXE_LAB_WORK/out/console.log" "$T/one.log" 2>/dev/null || cp "$T/one.out" "$T/one.log"
report "one guest" "$T/one.log" verbs_conformance verbs_loopback verbs_2qps_process verbs_migrate verbs_wrong_key auto_picks_verbs verbs_peer_vanishes fallback_no_route fallback_ulimit fallback_port_down
t1=$(date +%s)
TIMEOUT=400 "$RXE/run2.sh" "$GUEST" check 4 > "$T/two.out" 2>&1
report "two guests, server" "$RXE_LAB_WORK/out/vm-a.log" verbs_two_guests
report "two guests, client" "$RXE_LAB_WORK/out/vm-b.log" verbs_two_guests
t2=$(date +%s)
echo "wall time: one guest $((t1 - t0)) s, two guests $((t2 - t1)) s"
finish
