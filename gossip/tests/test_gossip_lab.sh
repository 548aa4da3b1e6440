#!/bin/bash
# Gossip over real UDP among 8 lab nodes (gossip_node, one per network namespace, 100 ms
# steps, window 3): everybody learns everybody within the model's bound, a crashed node is
# presumed dead within the limit and returns when restarted, a leaving node is seen leaving,
# a node with the wrong key is ignored (its datagrams counted as bad), malformed datagrams
# are counted by reason and dropped, and 30% datagram loss still converges.
#
# Tolerances, in time steps of the model (Amar et al., window W+1 = 4 entries, N = 8):
# convergence from a cold start within 3x the model's maximum age plus 1 s (timed from when all
# 8 processes run); steady-state ages within 5x the model's maximum age (the largest of 56 ages
# over 10 snapshots, on a loaded 2-core machine); under 30% loss both divided by 0.7, and the
# cold start within 4x: the last of 56 facts to arrive, each datagram lost with p = 0.3, has a
# longer tail than the steady-state ages the model gives (a CI run saw 2843 ms against 3x's
# 2842 ms).
set -u
SRC=${MOS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${MOS_BIN:-$SRC/build/bin}
LAB=$SRC/tests/lab/mos-lab
export MOS_LAB_NAME=gos$$
N=8 INTERVAL=100 WINDOW=3 DEAD=40
D=$(mktemp -d /tmp/mos-gossip-lab.XXXXXX)
passes=0; fails=0
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
declare -A pid

cleanup() {
    for i in "${!pid[@]}"; do kill -KILL "${pid[$i]}" 2>/dev/null; done
    "$LAB" down >/dev/null 2>&1
    rm -rf "$D"
}
trap cleanup EXIT

for f in "$BIN/gossip_node" "$BIN/mosbench"; do
    [ -x "$f" ] || { echo "FAIL: $f not built"; echo "0 passed, 1 failed"; exit 1; }
done
model_max=$("$BIN/mosbench" gossip-model --nodes $N --window $((WINDOW + 1)) |
            sed -n 's/.*max_age_model=\([0-9.]*\).*/\1/p')
ms() { date +%s%3N; }
# bound_ms FACTOR LOSS: FACTOR x the model's maximum age in ms, stretched for loss
bound_ms() { awk -v m="$model_max" -v f="$1" -v l="${2:-0}" -v i=$INTERVAL 'BEGIN { printf "%d", m * f * i / (1 - l) }'; }

start() { # start I [gossip_node options...]
    local i=$1; shift
    "$LAB" exec "$i" "$BIN/gossip_node" --interval-ms $INTERVAL --window $WINDOW \
        --dead-after $DEAD --out "$D/n$i" "$@" >>"$D/log$i" 2>&1 &
    pid[$i]=$!
}
stop() { # stop I SIGNAL
    kill -"$2" "${pid[$1]}" 2>/dev/null; wait "${pid[$1]}" 2>/dev/null; unset "pid[$1]"
    rm -f "$D/n$1"
}
state() { awk -v n="$MOS_LAB_NAME$2" '$1 == "node" && $2 == n { print $3 }' "$D/n$1" 2>/dev/null; }
counter() { awk -v k="$2" '$1 == "drop" && $2 == k { print $3 }' "$D/n$1" 2>/dev/null; }
stat_of() { awk -v k="$2" '$1 == "stat" { for (i = 2; i < NF; i += 2) if ($i == k) print $(i + 1) }' "$D/n$1" 2>/dev/null; }
# every node in LIST sees node J in STATE
all_see() { local j=$1 want=$2 i; shift 2; for i in "$@"; do [ "$(state "$i" "$j")" = "$want" ] || return 1; done; }
# every node of LIST sees all N nodes alive
# (one awk over all the files: 64 awk runs per poll took some 300 ms on a loaded 2-core
# machine, and a convergence was then seen up to a poll late)
all_alive() {
    local files=("${@/#/$D/n}")
    awk -v pre="$MOS_LAB_NAME" -v n=$N -v want=$# '
        FNR == 1 { read++ }
        $1 == "node" && $3 == "alive" && index($2, pre) == 1 { seen[FILENAME, $2] = 1 }
        END { for (k in seen) c++; exit !(read == want && c == want * n) }' "${files[@]}" 2>/dev/null
}
# wait_for TIMEOUT_MS CMD...: prints the ms it took; fails at the timeout
wait_for() {
    local limit=$1 t0 now; shift
    t0=$(ms)
    while :; do
        now=$(ms)
        if "$@"; then echo $((now - t0)); return 0; fi
        [ $((now - t0)) -gt "$limit" ] && { echo $((now - t0)); return 1; }
        sleep 0.05
    done
}
# largest age (ms) in the vectors of LIST, over 10 snapshots
max_age() {
    local k worst=0 a
    for ((k = 0; k < 10; k++)); do
        a=$(cat "${@/#/$D/n}" 2>/dev/null | awk '$1 == "node" && $NF != "self" && $4 > m { m = $4 } END { print m + 0 }')
        [ "$a" -gt "$worst" ] && worst=$a
        sleep 0.2
    done
    echo "$worst"
}
ALL=$(seq 1 $N)
# every node of LIST is running (has written its vector once): timing starts there, not at
# the launch of 8 processes through ip netns exec on a busy machine
all_running() { local i; for i in "$@"; do [ -s "$D/n$i" ] || return 1; done; }

"$LAB" up $N --cpus 0.5 >/dev/null || { echo "FAIL: lab up"; echo "0 passed, 1 failed"; exit 1; }
echo "model (N=$N, window $WINDOW + own): max age $model_max steps of $INTERVAL ms; dead after $DEAD steps"

# --- convergence and steady state ----------------------------------------------------------
for i in $ALL; do start "$i"; done
wait_for 10000 all_running $ALL >/dev/null || bad "not all gossip_node processes started"
limit=$(( $(bound_ms 3) + 1000 ))
if t=$(wait_for "$limit" all_alive $ALL); then ok "all $N nodes know all $N within $t ms (bound $limit ms)"
else bad "not all nodes know all $N after $t ms (bound $limit ms)"; fi
worst=$(max_age $ALL); limit=$(bound_ms 5)
[ "$worst" -le "$limit" ] && ok "steady-state ages at most $worst ms (bound $limit ms)" \
    || bad "steady-state age $worst ms over the bound $limit ms"
line=$(grep "^node ${MOS_LAB_NAME}5 " "$D/n2")
if [[ $line =~ ncpus=([0-9]+).*speed=([0-9]+).*mem=([0-9]+)/([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] \
    && [ "${BASH_REMATCH[4]}" -gt 0 ]; then ok "node 2 has node 5's probe figures: $line"
else bad "node 2's entry of node 5 lacks the probe figures: $line"; fi

# --- a crashed node is presumed dead within the limit, and returns -------------------------
others=$(seq 1 $((N - 1)))
stop $N KILL
# suspect past the limit, dead when its probes go unanswered for 3 steps (at least 250 ms)
probe_ms=$((3 * INTERVAL > 250 ? 3 * INTERVAL : 250))
limit=$((DEAD * INTERVAL + probe_ms + 1000))
if t=$(wait_for $((limit + 2000)) all_see $N dead $others) && [ "$t" -le "$limit" ]; then
    ok "crashed node $N presumed dead by all in $t ms (limit $((DEAD * INTERVAL)) ms + probes $probe_ms ms + 1 s)"
else bad "crashed node $N not presumed dead by all within $limit ms (took $t ms)"; fi
sleep 0.3 # the counter moves at each node's next step
false_dead=0
for i in $others; do [ "$(stat_of "$i" presumed_dead)" = 1 ] || false_dead=1; done
[ $false_dead = 0 ] && ok "no live node was presumed dead" \
    || bad "a live node was presumed dead: $(for i in $others; do echo -n "$i:$(stat_of "$i" presumed_dead) "; done)"
start $N
limit=$(( $(bound_ms 3) + 1000 ))
if t=$(wait_for "$limit" all_alive $ALL); then ok "restarted node $N known alive by all within $t ms"
else bad "restarted node $N not known by all after $t ms (bound $limit ms)"; fi

# --- a leaving node announces it ------------------------------------------------------------
stop 7 TERM
others=$(seq 1 6; echo 8)
if t=$(wait_for 2000 all_see 7 left $others); then ok "node 7 seen leaving by all in $t ms (dead limit $((DEAD * INTERVAL)) ms)"
else bad "node 7's leaving not seen by all within 2 s: $(for i in $others; do echo -n "$i:$(state "$i" 7) "; done)"; fi
start 7
if t=$(wait_for $(( $(bound_ms 3) + 1000 )) all_alive $ALL); then ok "node 7 back after leaving, in $t ms"
else bad "node 7 not back after restarting"; fi

# --- a node with the wrong key is ignored ---------------------------------------------------
others=$(seq 1 $((N - 1)))
stop $N KILL
wait_for $((DEAD * INTERVAL + 3000)) all_see $N dead $others >/dev/null
mac_before=0; for i in $others; do mac_before=$((mac_before + $(counter "$i" mac))); done
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$D/wrong.key"; echo >> "$D/wrong.key"; chmod 600 "$D/wrong.key"
start $N --key "$D/wrong.key"
sleep 2
mac_after=0; for i in $others; do mac_after=$((mac_after + $(counter "$i" mac))); done
all_see $N dead $others && ok "node with the wrong key stays presumed dead everywhere" \
    || bad "node with the wrong key was taken: $(for i in $others; do echo -n "$(state "$i" $N) "; done)"
[ $((mac_after - mac_before)) -gt 0 ] && ok "its datagrams counted as bad MACs ($((mac_after - mac_before)))" \
    || bad "no MAC drops counted for the wrong-key node"
[ "$(state $N 1)" != alive ] && ok "the wrong-key node does not take the others' news either" \
    || bad "the wrong-key node took news from node 1"
stop $N KILL
start $N
wait_for $(( $(bound_ms 3) + 1000 )) all_alive $ALL >/dev/null || bad "node $N not back with the right key"

# --- malformed datagrams are counted and dropped -------------------------------------------
reasons="short magic version mac format entry unknown replay"
declare -A before
for r in $reasons; do before[$r]=$(counter 1 "$r"); done
out=$("$LAB" exec 2 "$BIN/gossip_node" --send-junk "${MOS_LAB_NAME}1" 2>&1) || bad "send-junk: $out"
sleep 0.5
for r in $reasons; do
    now=$(counter 1 "$r")
    [ $((now - before[$r])) -ge 1 ] && ok "malformed datagram counted as '$r' ($((now - before[$r])))" \
        || bad "malformed datagram of kind '$r' not counted (before ${before[$r]}, now $now)"
done
all_alive $ALL && ok "every node still knows all $N alive after the malformed datagrams" \
    || bad "vectors damaged by malformed datagrams"

# --- a limit below the age tail: live nodes are suspected and probed, never presumed dead ----
# 4 steps is below the model's maximum age (4.3 steps at N = 8, W = 3 + own): without
# suspicion (as before issue 19) every such entry made a live node dead.
for i in $ALL; do stop "$i" KILL; done
for i in $ALL; do start "$i" --dead-after 4; done
wait_for 10000 all_running $ALL >/dev/null || bad "not all gossip_node processes started"
# (all alive at one instant is rare now: some entry is always past so low a limit, suspect)
all_known() { local i j s; for i in $ALL; do for ((j = 1; j <= N; j++)); do s=$(state "$i" "$j"); [ -n "$s" ] && [ "$s" != unknown ] || return 1; done; done; }
wait_for $(( $(bound_ms 3) + 1000 )) all_known >/dev/null || bad "not all known with a 4-step limit"
sum_stat() { local k=$1 i t=0; for i in $ALL; do t=$((t + $(stat_of "$i" "$k"))); done; echo $t; }
sleep 0.3 # every node's file shows its step after all_alive
base_suspected=$(sum_stat suspected)
enough_suspected() { [ "$(sum_stat suspected)" -ge $((base_suspected + 50)) ]; }
if t=$(wait_for 30000 enough_suspected); then
    dead=$(sum_stat presumed_dead); refuted=$(sum_stat refuted); acks=$(sum_stat probe_acks)
    [ "$dead" = 0 ] && ok "limit 4 steps: $(( $(sum_stat suspected) - base_suspected )) suspicions of live nodes in $t ms (after $base_suspected while starting), $refuted refuted ($acks by probe acks), none presumed dead"         || bad "limit 4 steps: $dead live nodes presumed dead ($(sum_stat suspected) suspected, $refuted refuted)"
else bad "limit 4 steps: only $(sum_stat suspected) suspicions in 30 s: nothing to test"; fi

# --- 30% datagram loss ------------------------------------------------------------------------
for i in $ALL; do stop "$i" KILL; done
if "$LAB" exec 1 tc qdisc add dev eth0 root netem loss 30% 2>/dev/null; then
    echo "loss: tc netem 30% on every node's eth0"
    for i in $(seq 2 $N); do "$LAB" exec "$i" tc qdisc add dev eth0 root netem loss 30%; done
    loss_opt=()
else
    echo "loss: no netem in this kernel (CONFIG_NET_SCH_NETEM unset): each receiver drops 30% (gossip_node --loss 0.3)"
    loss_opt=(--loss 0.3)
fi
for i in $ALL; do start "$i" "${loss_opt[@]}"; done
wait_for 10000 all_running $ALL >/dev/null || bad "not all gossip_node processes started"
limit=$(( $(bound_ms 4 0.3) + 1000 ))
if t=$(wait_for "$limit" all_alive $ALL); then ok "with 30% loss all $N know all $N within $t ms (bound $limit ms)"
else bad "with 30% loss not converged after $t ms (bound $limit ms)"; fi
worst=$(max_age $ALL); limit=$(bound_ms 5 0.3)
[ "$worst" -le "$limit" ] && ok "with 30% loss ages at most $worst ms (bound $limit ms)" \
    || bad "with 30% loss age $worst ms over the bound $limit ms"
if [ ${#loss_opt[@]} -gt 0 ]; then
    # Binomial: over all nodes (some 250 datagrams) 4 sigma is about 0.11.
    lost=0; got=0
    for i in $ALL; do lost=$((lost + $(counter "$i" test_loss))); got=$((got + $(stat_of "$i" received))); done
    awk -v l="$lost" -v r="$got" 'BEGIN { s = 4 * sqrt(0.21 / r); exit !(r > 100 && l / r > 0.3 - s && l / r < 0.3 + s) }' \
        && ok "the receivers dropped $lost of $got datagrams (30% asked)" \
        || bad "the receivers dropped $lost of $got datagrams, not about 30%"
fi

for i in $ALL; do stop "$i" KILL; done
"$LAB" down >/dev/null
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
