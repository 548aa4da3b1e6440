#!/bin/bash
# mosbench's command line: a result line for a known bench, a clear error for anything else.
set -u
B=$MOS_BIN/mosbench
fails=0; passes=0
ok()   { passes=$((passes+1)); echo "ok: $1"; }
bad()  { fails=$((fails+1)); echo "FAIL: $1"; }
out=$("$B" gossip-model --nodes 1000 --window 16) && grep -q '^result gossip-model nodes=1000 window=16 avg_age_model=64\.[0-9]' <<<"$out" \
    && ok "gossip-model result line" || bad "gossip-model result line: $out"
out=$("$B" nosuch 2>&1); rc=$?
[ $rc = 2 ] && grep -q "unknown benchmark 'nosuch'" <<<"$out" && ok "unknown bench" || bad "unknown bench: rc=$rc $out"
out=$("$B" gossip-model --nodes 1 2>&1); rc=$?
[ $rc = 2 ] && grep -q "need nodes >= 2" <<<"$out" && ok "bad nodes" || bad "bad nodes: rc=$rc $out"
out=$("$B" syscall --iters 200 2>&1); rc=$?
[ $rc = 0 ] && grep -Eq '^result syscall write1_us=[0-9.]+ native_us=[0-9.]+ rtt_us=[0-9.]+ read64k_us=[0-9.]+$' <<<"$out" \
    && ok "syscall bench runs and ends with its result line" || bad "syscall bench: rc=$rc $out"
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
