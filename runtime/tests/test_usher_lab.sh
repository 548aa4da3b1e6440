#!/bin/bash
# Memory ushering (issue 15): node 1 has 160 MiB, node 2 512 MiB (mos-lab --mem, a memory
# cgroup per node). A job that grows to 200 MiB outgrows node 1: kept there (mosrun -L) the
# kernel kills it at the limit; under mos, node 1's mosd sees its free memory fall below
# mem_low_pct and moves it to node 2 before the limit, where its memory is charged, and it
# finishes with the output of a native run.
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init ush
N=$MOS_LAB_NAME
lab_up 2 --cpus 0.5 --mem 160,512 --set mem_low_pct=30 --set balance_interval_ms=250
for i in 1 2; do "$LAB" exec --uncapped $i "$B/mosd" > "$W/mosd$i.log" 2>&1 & done
wait_mosd 1 2
wait_view 1 2 || bad "node 1 never heard of node 2"
memdir() { local d; for d in /sys/fs/cgroup/memory/mos-lab-$N/$N$1 /sys/fs/cgroup/mos-lab-$N/$N$1; do
    [ -d "$d" ] && { echo "$d"; return; }; done; }
mem_used() { # mem_used I: MiB charged to node I now
    local d; d=$(memdir "$1")
    awk '{ printf "%d", $1 / 1048576 }' "$d/memory.usage_in_bytes" 2>/dev/null || awk '{ printf "%d", $1 / 1048576 }' "$d/memory.current"
}
[ -n "$(memdir 1)" ] && ok "each node has a memory cgroup" || bad "no memory cgroup for node 1"
# node 1 offers its limit, not the machine's memory
mem_total() { on 1 "$B/mosmon" --once --json | python3 -c '
import json, sys
for n in json.load(sys.stdin):
    if n["name"] == sys.argv[1]: print(n.get("mem_total_mib", 0))' "${N}$1"; }
wait_until 10 eval '[ "$(mem_total 1)" = 160 ] && [ "$(mem_total 2)" = 512 ]'
t1=$(mem_total 1) t2=$(mem_total 2)
[ "$t1" = 160 ] && [ "$t2" = 512 ] && ok "the nodes offer their limits (160 and 512 MiB)" || bad "offered: node 1 '$t1', node 2 '$t2' MiB"

export MOSJOB_GROW=1
STEPS=200 STEP_MS=50 MIB=200
"$B/mosjob" $STEPS 0 "$W/ref.a" "$W/ref.b" $MIB < /dev/null > "$W/ref.out"
run() { # run NAME [mosrun options]: the growing job on node 1, as nobody; its status
    local name=$1; shift
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$@" "$B/mosjob" $STEPS $STEP_MS \
        "$W/$name.a" "$W/$name.b" $MIB < /dev/null > "$W/$name.out" 2> "$W/$name.err")
}

# the precondition: the job does not fit in node 1
run kept -L; rc=$?
[ $rc = 137 ] && ! grep -q "^ballast" "$W/kept.out" && ok "kept on node 1 (mosrun -L), it is killed at the limit (status 137)" \
    || bad "the job was meant to outgrow node 1: status $rc, $(tail -1 "$W/kept.out")"

# under mos it is moved before the limit, and finishes on node 2 (once node 1's memory is
# free again: the decision must be about this job)
wait_until 30 eval '[ "$(mem_used 1)" -lt 32 ]' || bad "node 1 still holds $(mem_used 1) MiB after the first run"
peak2=0
run moved & job=$!
while kill -0 $job 2>/dev/null; do
    u=$(mem_used 2); [ "${u:-0}" -gt "$peak2" ] && peak2=$u
    sleep 0.1
done
wait $job; rc=$?
grep -q "balance: moving job pid [0-9]* to ${N}2: memory ushering" "$W/mosd1.log" \
    && ok "node 1 ushered the job out ($(grep -m1 -o "memory ushering: free [0-9]* MiB < [0-9]*% of [0-9]* MiB" "$W/mosd1.log"))" \
    || bad "no ushering in node 1's log: $(grep -hE "balance|moving|runs on|error" "$W"/mosd*.log | tail -4)"
[ $rc = 7 ] && cmp -s "$W/moved.out" "$W/ref.out" && cmp -s "$W/moved.a" "$W/ref.a" \
    && ok "the ushered job finished with the output of a native run" \
    || bad "ushered job: status $rc, $(diff "$W/moved.out" "$W/ref.out" | head -3 | tr '\n' '|') $(tail -2 "$W/moved.err")"
[ "$peak2" -ge 120 ] && ok "its memory was charged to node 2 (peak $peak2 MiB there)" \
    || bad "node 2's charge peaked at $peak2 MiB: the guest's memory is not counted there"

lab_result
