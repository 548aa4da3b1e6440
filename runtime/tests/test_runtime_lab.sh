#!/bin/bash
# The runtime across lab nodes: a user's job started with mosrun on node 1 is moved to node 2
# while it runs and prints exactly what a native run prints (stdout, a file opened before the
# move, a file opened after it, stdin, getpid, a SIGINT); bad requests are refused with one
# line and the job goes on; a node that dies with a guest is reported by its deputy.
set -u
B=$MOS_BIN
LAB=$MOS_SRC/tests/lab/mos-lab
export MOS_LAB_NAME=rt$$
W=$(mktemp -d /tmp/mos-rt.XXXXXX)
chmod 777 "$W"
passes=0; fails=0
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
cleanup() {
    jobs -p | xargs -r kill -9 2>/dev/null
    "$LAB" down >/dev/null 2>&1
    rm -rf "$W"
}
trap cleanup EXIT
AS_USER=(setpriv --reuid=65534 --regid=65534 --clear-groups)
N1=${MOS_LAB_NAME}1; N2=${MOS_LAB_NAME}2; N3=${MOS_LAB_NAME}3

"$LAB" up 3 >/dev/null || { echo "FAIL: lab up"; echo "0 passed, 1 failed"; exit 1; }
declare -A MOSD
start_mosd() { "$LAB" exec "$1" "$B/mosd" >> "$W/mosd$1.log" 2>&1 & MOSD[$1]=$!; }
for i in 1 2 3; do start_mosd $i; done
for _ in $(seq 50); do
    [ -S /run/mos-lab/$MOS_LAB_NAME/mosd-$N3.sock ] && [ -S /run/mos-lab/$MOS_LAB_NAME/mosd-$N1.sock ] && break
    sleep 0.1
done
seq 1 3000 > "$W/input"
on() { local n=$1; shift; "$LAB" exec "$n" "$@"; }
job_of() { pgrep -P "$1" mosjob | head -1; }

# 1. the reference: the job natively, one SIGINT a second in
(cd "$W" && exec "${AS_USER[@]}" "$B/mosjob" 40 50 "$W/nat.a" "$W/nat.b" < "$W/input" > "$W/nat.out") &
nat=$!
sleep 1; kill -INT $nat; wait $nat; nat_rc=$?

# 2. the same job under mosrun on node 1, moved to node 2 half a second in
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" 40 50 "$W/mig.a" "$W/mig.b" \
    < "$W/input" > "$W/mig.out" 2> "$W/mig.err") &
run=$!
sleep 0.5
job=$(job_of $run)
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$job" "$N2" 2>&1)
grep -q "now runs on $N2" <<<"$out" && ok "mosmigrate moves the job to node 2" || bad "mosmigrate: $out"
ps2=$(on 2 "$B/mosps")
grep -q "$N2 *$N1 .*mosjob" <<<"$ps2" && ok "node 2's mosps shows the guest (WHERE $N2, FROM $N1)" || bad "mosps on 2: $ps2"
ps1=$(on 1 "$B/mosps")
grep -q " $job .*$N2 *$N1 " <<<"$ps1" && ok "node 1's mosps shows it away, under its home pid" || bad "mosps on 1: $ps1"
sleep 0.5; kill -INT $run
wait $run; mig_rc=$?
[ "$nat_rc" = 7 ] && [ "$mig_rc" = 7 ] && ok "exit status 7 reaches the shell" || bad "exit status: native $nat_rc, moved $mig_rc ($(cat "$W/mig.err"))"
for f in out a b; do
    if cmp -s "$W/nat.$f" "$W/mig.$f"; then ok "moved run's $f identical to the native run's ($(wc -l < "$W/nat.$f") lines)"
    else bad "$f differs: $(diff "$W/nat.$f" "$W/mig.$f" | head -5 | tr "\n" " ")"; fi
done
grep -q "interrupts: 1" "$W/mig.out" && grep -q "pid stable: yes" "$W/mig.out" \
    && ok "SIGINT reached the moved job once; getpid is stable" || bad "signal/pid: $(tail -3 "$W/mig.out")"

# 3. bad requests: one line, status 1, and the job goes on
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" 30 50 "$W/f.a" "$W/f.b" \
    < /dev/null > "$W/f.out" 2>&1) &
run=$!
sleep 0.3
job=$(job_of $run)
refused() { # refused NAME PATTERN CMD...
    local name=$1 pat=$2; shift 2
    local o; o=$("$@" 2>&1); local rc=$?
    [ $rc = 1 ] && grep -q -- "$pat" <<<"$o" && [ "$(wc -l <<<"$o")" = 1 ] && ok "$name" || bad "$name: rc=$rc $o"
}
refused "unknown node refused" "unknown node 'nosuch'" on 1 "${AS_USER[@]}" "$B/mosmigrate" "$job" nosuch
refused "another user may not move it" "permission denied" on 1 setpriv --reuid=65533 --regid=65533 --clear-groups "$B/mosmigrate" "$job" "$N2"
kill "${MOSD[3]}"; sleep 0.3
refused "a dead node is refused" "cannot reach $N3" on 1 "${AS_USER[@]}" "$B/mosmigrate" "$job" "$N3"
refused "not a mos job" "is not a mos job" on 1 "$B/mosmigrate" 1 "$N2"
wait $run; rc=$?
[ $rc = 7 ] && grep -q "^step 30 " "$W/f.out" && ok "after every refusal the job finished at home" || bad "job after refusals: rc=$rc $(tail -2 "$W/f.out")"
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" sh -c 'sleep 2; echo done' > "$W/s.out" 2>&1) &
run=$!
sleep 0.5
refused "a job with a child process stays" "has child processes" on 1 "${AS_USER[@]}" "$B/mosmigrate" "$(pgrep -P $run sh | head -1)" "$N2"
wait $run; grep -q done "$W/s.out" && ok "the refused job finished" || bad "sh job: $(cat "$W/s.out")"

# 4. the node running a guest dies: the deputy says so once and exits 113
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" 200 50 "$W/d.a" "$W/d.b" \
    < /dev/null > "$W/d.out" 2> "$W/d.err") &
run=$!
sleep 0.3
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$(job_of $run)" "$N2" 2>&1)
sleep 0.5
ip netns pids "$N2" | xargs -r kill -9   # everything on node 2: mosd, the supervisor, the guest
wait $run; rc=$?
[ $rc = 113 ] && grep -q "lost with node $N2" "$W/d.err" && ok "a dead guest node: mosrun reports the loss, exit 113" \
    || bad "dead node: rc=$rc, $out, $(cat "$W/d.err")"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
