#!/bin/bash
# Unequal nodes (issue 15): node 1 (0.25 CPU) starts CPU-bound jobs while node 2 (0.25 CPU) and
# node 3 (0.5 CPU) are idle. Each mosd offers its own cgroup's quota, so gossip tells a fast
# node from a slow one, and the opportunity cost sends the first job to the fast node 3, not to
# node 2, which is no faster than home. Every job finishes as it does natively.
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init het
N=$MOS_LAB_NAME
lab_up 3 --cpus 0.25,0.25,0.5 --set min_residence_ms=2000
for i in 1 2 3; do "$LAB" exec --uncapped $i "$B/mosd" > "$W/mosd$i.log" 2>&1 & done
wait_mosd 1 2 3
wait_view 1 3 || bad "node 1 never heard of all 3 nodes: $(on 1 "$B/mosmon" --once 2>&1 | tail -3)"

# each mosd says what it offers; node 1 sees node 3 twice as fast as node 2
grep -q "quota: 0.25 CPU" "$W/mosd1.log" && grep -q "quota: 0.50 CPU" "$W/mosd3.log" \
    && ok "each node offers its own cap (0.25 and 0.50 CPU)" \
    || bad "offers: $(grep -h quota "$W"/mosd*.log | tr '\n' ' ')"
speed() { on 1 "$B/mosmon" --once | awk -v n="${N}$1" '$1 == n { print $5; exit }'; }
s2=$(speed 2) s3=$(speed 3)
[ -n "$s2" ] && [ -n "$s3" ] && [ "$s2" -gt 0 ] && awk -v a="$s2" -v b="$s3" 'BEGIN { exit !(b > 1.8 * a && b < 2.2 * a) }' \
    && ok "node 1 sees node 3 twice as fast as node 2 ($s3 against $s2)" || bad "speeds seen: node 2 '$s2', node 3 '$s3'"

# a job of a second or more of CPU at full speed, whatever this machine's speed
TIMEFORMAT=%U
cal=$( { time "$B/mosjob" 700 0 "$W/cal.a" "$W/cal.b" < /dev/null > /dev/null; } 2>&1 )
STEPS=$(awk -v u="$cal" 'BEGIN { s = u > 0 ? int(700 * 1.0 / u) : 700; print s < 700 ? 700 : s }')
"$B/mosjob" $STEPS 0 "$W/ref.a" "$W/ref.b" < /dev/null > "$W/ref.out"
pids=()
for j in 1 2; do
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" $STEPS 0 "$W/j$j.a" "$W/j$j.b" \
        < /dev/null > "$W/j$j.out" 2> "$W/j$j.err") &
    pids+=($!)
done
first_move() { grep -m1 -o "now runs on ${N}[23]\$" "$W/mosd1.log" | grep -o "[23]\$"; }
wait_until 60 eval '[ -n "$(first_move)" ] || ! kill -0 "${pids[0]}" 2>/dev/null'
first=$(first_move)
[ "$first" = 3 ] && ok "the first job to move went to the fast node 3 ($(grep -m1 "balance: moving" "$W/mosd1.log" | sed 's/.*balance: //; s/: opportunity cost: .* saves/, saving/; s/ net (.*//') net)" \
    || bad "first move: to node '${first:-none}'; $(grep -hE "balance|now runs" "$W"/mosd*.log | tail -4)"
rcs=""; for p in "${pids[@]}"; do wait "$p"; rcs="$rcs $?"; done
good=0
for j in 1 2; do cmp -s "$W/j$j.out" "$W/ref.out" && cmp -s "$W/j$j.a" "$W/ref.a" && good=$((good + 1)); done
[ "$rcs" = " 7 7" ] && [ $good = 2 ] && ok "both jobs finished once, output identical to a native run" \
    || bad "jobs: statuses$rcs, $good identical"

lab_result
