#!/bin/bash
# Automatic load balancing in a 4-node lab (0.5 CPU per node): CPU-bound jobs started on node 1
# spread by themselves, never to a blocked node, jobs kept to some nodes (mosrun -N) only
# there; expel empties a node; a node whose mosd and
# guests die loses only those guests, which their deputies report; no job ever runs twice and
# every finished job printed exactly what it prints natively.
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init bal
N=$MOS_LAB_NAME
lab_up 4 --cpus 0.5 --set min_residence_ms=2000
declare -A MOSD
for i in 1 2 3 4; do "$LAB" exec --uncapped $i "$B/mosd" > "$W/mosd$i.log" 2>&1 & MOSD[$i]=$!; done
wait_mosd 1 2 3 4
guests_on() { on "$1" "$B/mosps" | awk -v n="${N}$1" 'NR > 1 && $3 == n && $4 != n' | wc -l; }
# Each job needs a second of CPU at least, whatever this machine's speed: six of them then keep
# node 1's half CPU busy for 12 s, time enough for the news, the residence and the moves
# (jobs of a fixed step count finished before the balancer acted on a fast CI machine).
TIMEFORMAT=%U
cal=$( { time "$B/mosjob" 700 0 "$W/cal.a" "$W/cal.b" < /dev/null > /dev/null; } 2>&1 )
STEPS=$(awk -v u="$cal" 'BEGIN { s = u > 0 ? int(700 * 1.0 / u) : 700; print s < 700 ? 700 : s }')
"$B/mosjob" $STEPS 0 "$W/ref.a" "$W/ref.b" < /dev/null > "$W/ref.out"
wait_view 1 4 || bad "node 1 never heard of all 4 nodes: $(on 1 "$B/mosmon" --once 2>&1 | tail -4)"

out=$(on 4 "$B/mosctl" block)
grep -q "refuses new guests" <<<"$out" && ok "mosctl block" || bad "block: $out"
out=$(on 4 "${AS_USER[@]}" "$B/mosctl" unblock 2>&1)
[ $? = 1 ] && grep -q "is for root" <<<"$out" && ok "only root administers a node" || bad "non-root unblock: $out"

# 1. six CPU-bound jobs on node 1 spread to nodes 2 and 3, never to the blocked node 4
start_job() { # start_job NAME: appends its pid to pids (no subshell: the shell must wait for it)
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" $STEPS 0 "$W/$1.a" "$W/$1.b" \
        < /dev/null > "$W/$1.out" 2> "$W/$1.err") &
    pids+=($!)
}
pids=()
for j in 1 2 3 4 5 6; do start_job j$j; done
# where they went, from node 1's log (a short job may already be done by the time mosps looks);
# wait for two moves while the jobs still run (a loaded host makes everything slower)
moved_to() { grep -c "now runs on ${N}$1\$" "$W/mosd1.log"; }
for _ in $(seq 120); do
    [ $(( $(moved_to 2) + $(moved_to 3) )) -ge 2 ] && break
    kill -0 "${pids[0]}" 2>/dev/null || break
    sleep 0.25
done
g2=$(moved_to 2); g3=$(moved_to 3); g4=$(moved_to 4)
[ $((g2 + g3)) -ge 2 ] && ok "jobs spread by themselves ($g2 to node 2, $g3 to node 3)" \
    || bad "no spreading: $g2/$g3/$g4 moved; $(grep -hE "balance|stays|refused|error|now runs" "$W"/mosd*.log | tail -8); $(on 1 "$B/mosmon" --once 2>&1 | tr '\n' ' ')"
[ "$g4" = 0 ] && [ "$(guests_on 4)" = 0 ] && ok "the blocked node got no guests" || bad "blocked node 4 got $g4 guests"
grep -q "balance: moving job" "$W/mosd1.log" && ok "every move is logged with its reason" || bad "no balance log"
rcs=""
for p in "${pids[@]}"; do wait "$p"; rcs="$rcs $?"; done
good=0
for j in 1 2 3 4 5 6; do cmp -s "$W/j$j.out" "$W/ref.out" && cmp -s "$W/j$j.a" "$W/ref.a" && good=$((good + 1)); done
[ "$rcs" = " 7 7 7 7 7 7" ] && [ $good = 6 ] && ok "all six finished once, output identical to a native run" \
    || bad "jobs: statuses$rcs, $good identical"

# 2. expel: a node with guests sends them all home
on 4 "$B/mosctl" unblock >/dev/null
pids=()
for j in 7 8 9 10; do start_job j$j; done
X=""
for _ in $(seq 60); do
    for n in 2 3 4; do [ "$(guests_on $n)" -gt 0 ] && { X=$n; break; }; done
    [ -n "$X" ] && break
    sleep 0.25
done
X=${X:-2}
before=$(guests_on $X)
on 1 "$B/mosctl" block >/dev/null   # keep the expelled guests at home
on $X "$B/mosctl" block >/dev/null
out=$(on $X "$B/mosctl" expel)
for _ in $(seq 40); do [ "$(guests_on $X)" = 0 ] && break; sleep 0.25; done
after=$(guests_on $X)
[ "$before" -gt 0 ] && [ "$after" = 0 ] && ok "expel emptied node $X ($before guest(s): $out)" \
    || bad "expel on node $X: $before before, $after after ($out)"
for p in "${pids[@]}"; do wait "$p"; done
good=0
for j in 7 8 9 10; do cmp -s "$W/j$j.out" "$W/ref.out" && good=$((good + 1)); done
[ $good = 4 ] && ok "the expelled jobs finished correctly" || bad "after expel only $good of 4 correct"
for i in 1 $X; do on $i "$B/mosctl" unblock >/dev/null; done

# 2b. jobs kept to nodes 1 and 3 (mosrun -N, as the Slurm plugin starts tasks) spread, but only
#     to node 3, though 2 and 4 are as free
start_kept() { # start_kept NAME
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" -N "${N}1,${N}3" "$B/mosjob" $STEPS 0 \
        "$W/$1.a" "$W/$1.b" < /dev/null > "$W/$1.out" 2> "$W/$1.err") &
    pids+=($!)
}
mark=$(wc -l < "$W/mosd1.log")
moved_since() { tail -n +$((mark + 1)) "$W/mosd1.log" | grep -c "now runs on ${N}$1\$"; }
pids=()
for j in k1 k2 k3 k4; do start_kept $j; done
for _ in $(seq 120); do
    [ "$(moved_since 3)" -ge 1 ] && break
    kill -0 "${pids[0]}" 2>/dev/null || break
    sleep 0.25
done
rcs=""; for p in "${pids[@]}"; do wait "$p"; rcs="$rcs $?"; done
k3=$(moved_since 3) k2=$(moved_since 2) k4=$(moved_since 4)
others=$(grep -h "now runs on ${N}[24]\$" "$W/mosd3.log" | wc -l)
# the balancer chose within the list: nodes 2 and 4 never had to refuse one of them
tried=$(cat "$W/mosd2.log" "$W/mosd4.log" | grep -c "not one of the job's nodes")
[ "$k3" -ge 1 ] && [ "$k2" = 0 ] && [ "$k4" = 0 ] && [ "$others" = 0 ] && [ "$tried" = 0 ] \
    && [ "$rcs" = " 7 7 7 7" ] \
    && ok "jobs kept to nodes 1 and 3 spread to node 3 only ($k3 moves, none tried elsewhere), and finished" \
    || bad "kept jobs: to 3: $k3, to 2: $k2, to 4: $k4, from 3 on: $others, refused by 2 and 4: $tried, statuses$rcs"

# 3. node 3 dies with its guests: only those jobs are lost, each reported by its deputy
pids=()
for j in 11 12 13 14 15 16; do start_job j$j; done
for _ in $(seq 40); do [ "$(guests_on 3)" -gt 0 ] && break; sleep 0.25; done
lost_expected=$(guests_on 3)
ip netns pids "${N}3" | xargs -r kill -9
rcs=(); for p in "${pids[@]}"; do wait "$p"; rcs+=($?); done
lost=0; good=0; dup=0
for k in 0 1 2 3 4 5; do
    j=$((11 + k))
    if [ "${rcs[$k]}" = 113 ] && grep -q "was lost" "$W/j$j.err"; then lost=$((lost + 1))
    elif [ "${rcs[$k]}" = 7 ] && cmp -s "$W/j$j.out" "$W/ref.out"; then good=$((good + 1)); fi
    [ "$(grep -c '^step 1 ' "$W/j$j.out")" -gt 1 ] && dup=$((dup + 1))
done
[ "$lost_expected" -gt 0 ] && [ $lost = "$lost_expected" ] && [ $((lost + good)) = 6 ] \
    && ok "node 3 died: its $lost guest(s) reported lost, the other $good finished correctly" \
    || bad "node death: expected $lost_expected lost, got $lost lost and $good good (${rcs[*]})"
[ $dup = 0 ] && ok "no job ran twice" || bad "$dup job(s) printed their first step twice"

lab_result
