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
out=$("$B" migrate --sizes 4M,8M --backend tcp 2>&1) && grep -q '^result migrate fixed_ms=[-0-9.]* per_page_us=[0-9.]* r2=[-0-9.]* gbps=[0-9.]* floor_gbps=[0-9.]* ratio=[0-9.]* freeze_ms_1g=NA total_s_1g=NA$' <<<"$out" \
    && ok "migrate result line (small sizes, tcp)" || bad "migrate result line: $out"
out=$("$B" migrate --sizes 4M 2>&1); rc=$?
[ $rc = 2 ] && grep -q "at least two sizes" <<<"$out" && ok "migrate: one size refused" || bad "migrate one size: rc=$rc $out"
out=$("$B" migrate --sizes 4M,x 2>&1); rc=$?
[ $rc = 2 ] && grep -q "bad size 'x'" <<<"$out" && ok "migrate: bad size" || bad "migrate bad size: rc=$rc $out"
out=$("$B" migrate --backend carrier-pigeon 2>&1); rc=$?
[ $rc = 2 ] && grep -q "not available" <<<"$out" && ok "migrate: unknown backend" || bad "migrate backend: rc=$rc $out"
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
