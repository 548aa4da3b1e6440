#!/bin/bash
# mosbench placement: one result line per policy and per IPC pattern, mappings never better than
# the exact optimum (that would mean a broken optimum or a broken byte count), bad arguments
# refused. Figures themselves are reported by the bench, not asserted here.
set -u
B=$MOS_BIN/mosbench
fails=0; passes=0
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }

out=$("$B" placement --jobs 300 --nodes 8 --seed 3) || bad "placement run failed"
n=$(grep -cE '^result placement policy=(opportunity-cost|greedy-least-loaded|round-robin|random|opportunity-cost\+balancer|home\+balancer) mean_slowdown=[0-9.]+ max_slowdown=[0-9.]+$' <<<"$out")
[ "$n" = 6 ] && ok "six policy result lines" || bad "policy lines: $out"
again=$("$B" placement --jobs 300 --nodes 8 --seed 3)
[ "$out" = "$again" ] && ok "same seed, same figures" || bad "not reproducible"

for p in ring stencil2d stencil3d alltoall-blocks random-sparse; do
    line=$("$B" placement --ipc $p --nodes 4 --slots 8 | grep '^result ipc')
    vo=$(sed -n 's/.* vs_optimum=\([0-9.]*\)$/\1/p' <<<"$line")
    if [[ "$line" =~ ^result\ ipc\ pattern=$p\ internode_bytes=[0-9]+\ vs_byslot=[0-9.]+\ vs_bynode=[0-9.]+\ vs_optimum=[0-9.]+$ ]] \
        && awk -v v="$vo" 'BEGIN{exit !(v >= 1.0)}'; then ok "$p: $line"
    else bad "$p: $line"; fi
done

out=$("$B" placement --ipc hypercube 2>&1); rc=$?
[ $rc = 2 ] && grep -q "unknown pattern 'hypercube'" <<<"$out" && ok "unknown pattern" || bad "unknown pattern: $rc $out"
out=$("$B" placement --nodes 1 2>&1); rc=$?
[ $rc = 2 ] && grep -q "need 2 <= nodes" <<<"$out" && ok "bad nodes" || bad "bad nodes: $rc $out"
out=$("$B" placement --jobs x 2>&1); rc=$?
[ $rc = 2 ] && grep -q "bad argument '--jobs'" <<<"$out" && ok "bad jobs" || bad "bad jobs: $rc $out"
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
