#!/bin/bash
# mosbench gossip-lab: gossip over real UDP among N lab nodes (gossip_node, the library with
# its automatic suspicion limit, one per network namespace), side by side with the model.
#   steady state  for S seconds every node's vector is sampled twice a second: average and
#                 largest age (steps), false deaths (live nodes presumed dead: the nodes' own
#                 counters), bytes sent per step (vectors and probes), CPU per node
#   kill          kill -9 of one node: time until every other node presumes it dead
#   silent        another node's link goes down: the same (then up again, timed back)
#   firewalled    a third node drops all UDP in and out (iptables, where it works): the same
#   rejoin        the killed node restarted: time until every node knows it back
# Last line: result gossip_lab nodes=N avg_age= max_age= bytes_per_push= cpu_pct= false_dead=
#            kill_s= silent_s= rejoin_s=
#   mosbench gossip-lab [--nodes N] [--interval-ms MS] [--window W] [--seconds S]
set -u
N=32 INTERVAL=20 WINDOW=15 SECS=30
while [ $# -gt 0 ]; do
    case $1 in
    --nodes) N=$2; shift 2 ;;
    --interval-ms) INTERVAL=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    *) echo "mosbench gossip-lab: bad argument '$1'" >&2; exit 2 ;;
    esac
done
for v in N INTERVAL WINDOW SECS; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || { echo "mosbench gossip-lab: ${v,,} takes a whole number >= 1" >&2; exit 2; }
done
[ "$N" -ge 4 ] && [ "$N" -le 250 ] || { echo "mosbench gossip-lab: --nodes 4..250" >&2; exit 2; }
[ "$WINDOW" -lt "$N" ] || WINDOW=$((N - 1))
BIN=${MOS_BIN:-$(dirname "$(readlink -f "$0")")}
LAB=${MOS_LAB:-$BIN/mos-lab}
for f in "$BIN/gossip_node" "$BIN/mosbench" "$LAB"; do
    [ -x "$f" ] || { echo "mosbench gossip-lab: $f not found (gossip_node is built with the tests)" >&2; exit 1; }
done
export MOS_LAB_NAME=gl$$
D=$(mktemp -d /tmp/mos-gossip-lab.XXXXXX)
declare -A pid
cleanup() {
    for i in "${!pid[@]}"; do kill -KILL "${pid[$i]}" 2>/dev/null; done
    "$LAB" down >/dev/null 2>&1
    rm -rf "$D"
}
trap cleanup EXIT
ms() { date +%s%3N; }
start() { # start I
    "$LAB" exec "$1" "$BIN/gossip_node" --interval-ms "$INTERVAL" --window "$WINDOW" \
        --out "$D/n$1" >>"$D/log$1" 2>&1 &
    pid[$1]=$!
    disown "$!" # killed on purpose: no job notices
}
# sum of a counter over the nodes listed
stat_sum() {
    local k=$1 i t=0 v; shift
    for i in "$@"; do
        v=$(awk -v k="$k" '$1 == "stat" { for (i = 2; i < NF; i += 2) if ($i == k) print $(i + 1) }' "$D/n$i" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo $t
}
# every node of the list holds node J in a state WANT matches (alive, alive|suspect): one awk over all their files, so that a
# look at 64 nodes takes milliseconds, not the 0.2 s of one awk per node (the resolution of
# the failure timings below)
all_see() {
    local j=$1 want=$2 i files=(); shift 2
    for i in "$@"; do files+=("$D/n$i"); done
    awk -v n="$MOS_LAB_NAME$j" -v want="$want" -v k=$# '$1 == "node" && $2 == n { c++; if ($3 !~ "^(" want ")$") bad = 1 }
        END { exit bad || c != k }' "${files[@]}" 2>/dev/null
}
# every node knows every node, none presumed dead (a suspect is being probed: at N = 64 some
# entry of the 4032 is past the limit at almost any instant)
vectors() { local i; for i in $ALL; do cat "$D/n$i" 2>/dev/null; done; } # not the n*.tmp being written
all_up() { vectors | awk -v n="$N" '$1 == "node" && ($3 == "alive" || $3 == "suspect") { k++ } END { exit k != n * n }'; }
# every node of the list knows node J alive or suspect
all_see_up() { local j=$1; shift; all_see "$j" 'alive|suspect' "$@"; }
# time_until TIMEOUT_S CMD...: seconds it took (3 decimals), or "timeout"
time_until() {
    local limit=$(($1 * 1000)) t0 now; shift
    t0=$(ms)
    while :; do
        now=$(ms)
        "$@" && { awk -v d=$((now - t0)) 'BEGIN { printf "%.3f", d / 1000 }'; return 0; }
        [ $((now - t0)) -gt $limit ] && { echo timeout; return 1; }
        sleep 0.02
    done
}
cpu_ticks() { local i t=0 v; for i in $ALL; do v=$(awk '{ print $14 + $15 }' "/proc/$(gossip_pid "$i")/stat" 2>/dev/null); t=$((t + ${v:-0})); done; echo $t; }
gossip_pid() { pgrep -f -- "^$BIN/gossip_node .*--out $D/n$1\$" | head -1; }
others_than() { local i; for i in $ALL; do [ "$i" = "$1" ] || echo "$i"; done; }

ALL=$(seq 1 "$N")
mw=$((WINDOW + 1 < N ? WINDOW + 1 : N - 1)) # the model's window counts the own entry
read -r model_avg model_max < <("$BIN/mosbench" gossip-model --nodes "$N" --window $mw |
    sed -n 's/.*avg_age_model=\([0-9.]*\) max_age_model=\([0-9.]*\).*/\1 \2/p')
"$LAB" up "$N" --cpus 0.5 >/dev/null || { echo "mosbench gossip-lab: lab up failed" >&2; exit 1; }
for i in $ALL; do start "$i"; done
t=$(time_until 60 all_up) || { echo "mosbench gossip-lab: the $N nodes never all knew each other: $(vectors | awk '$1 == "node" { c[$3]++ } END { for (s in c) printf "%s %d, ", s, c[s] }')" >&2; exit 1; }
echo "nodes=$N window=$WINDOW+own interval=${INTERVAL}ms: all know all (alive or suspect) ${t}s after start"

# --- steady state ---------------------------------------------------------------------------
dead0=$(stat_sum presumed_dead $ALL); susp0=$(stat_sum suspected $ALL)
bytes0=$(stat_sum bytes_sent $ALL); steps0=$(stat_sum steps $ALL)
cpu0=$(cpu_ticks); t0=$(ms)
: >"$D/ages"
end=$(( $(ms) + SECS * 1000 ))
while [ "$(ms)" -lt "$end" ]; do
    vectors | awk '$1 == "node" && $NF != "self" { print $3, $4 }' >>"$D/ages"
    sleep 0.5
done
cpu1=$(cpu_ticks); t1=$(ms)
false_dead=$(( $(stat_sum presumed_dead $ALL) - dead0 )); suspected=$(( $(stat_sum suspected $ALL) - susp0 ))
bytes=$(( $(stat_sum bytes_sent $ALL) - bytes0 )); steps=$(( $(stat_sum steps $ALL) - steps0 ))
read -r avg max samples dead_samples < <(awk -v i="$INTERVAL" '{ n++; s += $2; if ($2 > m) m = $2; d += $1 == "dead" }
    END { printf "%.2f %.1f %d %d\n", s / n / i, m / i, n, d }' "$D/ages")
hz=$(getconf CLK_TCK)
cpu=$(awk -v c=$((cpu1 - cpu0)) -v hz="$hz" -v ms=$((t1 - t0)) -v n="$N" 'BEGIN { printf "%.2f", 100 * c / hz / (ms / 1000) / n }')
per_push=$(awk -v b="$bytes" -v s="$steps" 'BEGIN { printf "%.0f", s ? b / s : 0 }')
echo "steady state, ${SECS}s: average age $avg steps (model $model_avg, ratio $(awk -v a="$avg" -v m="$model_avg" 'BEGIN { printf "%.2f", a / m }')),"\
     "largest $max steps (model's expected maximum $model_max, ratio $(awk -v a="$max" -v m="$model_max" 'BEGIN { printf "%.2f", a / m }'))"
echo "  $samples sampled entries, $dead_samples of them showing a live node dead; $suspected suspicions, $false_dead live nodes presumed dead"
echo "  $per_push bytes sent per node and step (vectors and probes), CPU $cpu% per node"

# --- failures -------------------------------------------------------------------------------
k=$N s=$((N - 1)) f=$((N - 2))
kill -KILL "$(gossip_pid $k)" 2>/dev/null; kill -KILL "${pid[$k]}" 2>/dev/null; unset "pid[$k]"
kill_s=$(time_until 60 all_see $k dead $(others_than $k))
echo "kill -9 of node $k: known dead by all in ${kill_s}s"
"$LAB" exec $s ip link set dev eth0 down
silent_s=$(time_until 60 all_see $s dead $(others_than $s $k | grep -vx $k))
echo "link of node $s down: known dead by all in ${silent_s}s"
"$LAB" exec $s ip link set dev eth0 up
back_s=$(time_until 60 all_see_up $s $(others_than $s | grep -vx $k))
echo "link of node $s up again: known back by all in ${back_s}s"
if "$LAB" exec $f iptables -A INPUT -p udp -j DROP 2>/dev/null &&
   "$LAB" exec $f iptables -A OUTPUT -p udp -j DROP 2>/dev/null; then
    fw_s=$(time_until 60 all_see $f dead $(others_than $f | grep -vx $k))
    echo "node $f dropping all UDP: known dead by all in ${fw_s}s"
    "$LAB" exec $f iptables -F
else
    echo "node $f dropping all UDP: not measured (iptables does not work in the lab's namespaces here)"
fi
start $k
rejoin_s=$(time_until 60 all_see_up $k $(others_than $k))
echo "node $k restarted: known back by all in ${rejoin_s}s"
echo "result gossip_lab nodes=$N avg_age=$avg max_age=$max bytes_per_push=$per_push cpu_pct=$cpu false_dead=$false_dead kill_s=$kill_s silent_s=$silent_s rejoin_s=$rejoin_s"
