#!/bin/bash
# The runtime across lab nodes: a user's job started with mosrun on node 1 is moved to node 2
# while it runs and prints exactly what a native run prints (stdout, a file opened before the
# move, a file opened after it, stdin, getpid, a SIGINT); bad requests are refused with one
# line and the job goes on; a node that dies with a guest is reported by its deputy.
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init rt

# the balancer is off here: these tests place jobs by hand (test_balance_lab.sh tests it)
lab_up 3 --set balance=0 --set metrics_listen=127.0.0.1:9771
declare -A MOSD
start_mosd() { "$LAB" exec --uncapped "$1" "$B/mosd" >> "$W/mosd$1.log" 2>&1 & MOSD[$1]=$!; }
for i in 1 2 3; do start_mosd $i; done
wait_mosd 1 2 3
seq 1 3000 > "$W/input"
job_of() { pgrep -P "$1" | head -1; }  # the job, or its shell while it is away
# scrape N [PATH [METHOD]]: node N's Prometheus endpoint (HTTP status, then the body)
scrape() {
    on "$1" python3 -c 'import sys, urllib.request as u, urllib.error as e
try:
    r = u.urlopen(u.Request("http://127.0.0.1:9771" + sys.argv[1], method=sys.argv[2]), timeout=10)
    print(r.status); print(r.read().decode())
except e.HTTPError as x: print(x.code)' "${2:-/metrics}" "${3:-GET}"
}
metric() { scrape "$1" | awk -v m="$2" '$1 == m { print $2 }'; }  # metric N 'NAME{LABELS}'
# started RUN [NAME]: wait until mosrun RUN's job (a child named NAME, if given) is registered
# with node 1's mosd, and print its pid
job_registered() { local j; j=$(pgrep -P "$1" ${2:+-x "$2"} | head -1); [ -n "$j" ] && registered "$j"; }
started() { wait_until 20 job_registered "$@"; pgrep -P "$1" ${2:+-x "$2"} | head -1; }

# 1. the reference: the job natively, one SIGINT a second in
(cd "$W" && exec "${AS_USER[@]}" "$B/mosjob" 100 50 "$W/nat.a" "$W/nat.b" < "$W/input" > "$W/nat.out") &
nat=$!
sleep 1; kill -INT $nat; wait $nat; nat_rc=$?

# 2. the same job under mosrun on node 1, moved 1 -> 2 -> 3 -> home while it runs
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" 100 50 "$W/mig.a" "$W/mig.b" \
    < "$W/input" > "$W/mig.out" 2> "$W/mig.err") &
run=$!
job=$(started $run)
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$job" "$N2" 2>&1)
grep -q "now runs on $N2" <<<"$out" && ok "mosmigrate moves the job to node 2" || bad "mosmigrate: $out"
ps2=$(on 2 "$B/mosps")
grep -q " $job .*$N2 *$N1 .*mosjob" <<<"$ps2" && ok "node 2's mosps shows the guest (WHERE $N2, FROM $N1, home pid)" || bad "mosps on 2: $ps2"
ps1=$(on 1 "$B/mosps")
grep -q " $job .*$N2 *$N1 " <<<"$ps1" && ok "node 1's mosps shows it away, under its home pid" || bad "mosps on 1: $ps1"
sleep 0.3; kill -INT $run  # Ctrl-C at home reaches the job on node 2
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$job" "$N3" 2>&1)
grep -q "now runs on $N3" <<<"$out" && ok "node 2 moves it on to node 3" || bad "2 -> 3: $out"
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$job" home 2>&1)
grep -q "now runs on $N1" <<<"$out" && ok "node 3 sends it home" || bad "3 -> home: $out"
native_home() { # PID MOSRUN: the job runs in its own process again: no filter, no tracer, mosrun's child
    local st; st=$(cat /proc/$1/status 2>/dev/null)
    grep -q "^Seccomp:[[:space:]]*0" <<<"$st" && grep -q "^TracerPid:[[:space:]]*0" <<<"$st" \
        && grep -q "^PPid:[[:space:]]*$2\$" <<<"$st" && ! grep -q "^Name:.*mos-husk" <<<"$st" \
        && [ "$(readlink /proc/$1/exe)" = "$3" ]
}
native_home "$job" "$run" "$B/mosjob" && ok "back home it runs natively again: same pid, mosrun's child, no filter, its own exe" \
    || bad "not native at home: $(grep -E 'Name|Seccomp|TracerPid|PPid' /proc/$job/status 2>&1 | tr '\n' ' ')"
wait $run; mig_rc=$?
[ "$nat_rc" = 7 ] && [ "$mig_rc" = 7 ] && ok "exit status 7 reaches the shell" || bad "exit status: native $nat_rc, moved $mig_rc ($(cat "$W/mig.err"))"
for f in out a b; do
    if cmp -s "$W/nat.$f" "$W/mig.$f"; then ok "moved run's $f identical to the native run's ($(wc -l < "$W/nat.$f") lines)"
    else bad "$f differs: $(diff "$W/nat.$f" "$W/mig.$f" | head -5 | tr "\n" " ")"; fi
done
grep -q "interrupts: 1" "$W/mig.out" && grep -q "pid stable: yes" "$W/mig.out" \
    && ok "SIGINT reached the moved job once; getpid is stable" || bad "signal/pid: $(tail -3 "$W/mig.out")"

# 2m. the moves show in Prometheus: node 1 asked three (one streamed by itself), the job came
# home natively; node 2 took one guest
out_ok=$(metric 1 'mos_migrations_total{direction="out",result="ok"}')
in1=$(metric 1 'mos_migrations_total{direction="in",result="ok"}')
in2=$(metric 2 'mos_migrations_total{direction="in",result="ok"}')
bytes=$(metric 1 mos_migration_bytes_total)
count=$(metric 1 mos_migration_duration_seconds_count)
[ "$out_ok" = 3 ] && [ "$in1" = 1 ] && [ "$in2" = 1 ] && [ "$count" = 3 ] && [ "${bytes:-0}" -gt 65536 ] \
    && ok "metrics: 3 moves out of node 1 ($bytes image bytes streamed), 1 in on node 2, 1 home" \
    || bad "metrics after the moves: out $out_ok in1 $in1 in2 $in2 count $count bytes $bytes"
alive=$(scrape 1 | grep -c '^mos_gossip_node_alive{node=".*"} 1$')
[ "$alive" = 3 ] && [ "$(scrape 1 /other | head -1)" = 404 ] && [ "$(scrape 1 /metrics POST | head -1)" = 405 ] \
    && ok "metrics: gossip sees 3 nodes alive; another path is 404, POST 405" \
    || bad "metrics: alive $alive, /other $(scrape 1 /other | head -1), POST $(scrape 1 /metrics POST | head -1)"

served=$(scrape 1 | awk '/^mos_/ { sub(/[{ ].*/, "", $1); print $1 }' | sort -u)
missing=$(grep -o 'mos_[a-z_]*' "$MOS_SRC/etc/grafana-mos.json" | sort -u | while read -r m; do
    grep -qx "$m" <<<"$served" || echo "$m"; done)
[ -n "$served" ] && [ -z "$missing" ] && ok "metrics: every figure the Grafana dashboard uses is served" \
    || bad "metrics the dashboard uses but mosd does not serve: $missing"

# 2a. a move on that the next node refuses (blocked): the guest goes on where it was
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" 100 50 "$W/x.a" "$W/x.b" \
    < /dev/null > "$W/x.out" 2> "$W/x.err") &
run=$!
xjob=$(started $run)
on 1 "${AS_USER[@]}" "$B/mosmigrate" "$xjob" "$N2" > /dev/null 2>&1
on 3 "$B/mosctl" block > /dev/null
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$xjob" "$N3" 2>&1); mrc=$?
on 3 "$B/mosctl" unblock > /dev/null
wait $run; rc=$?
"$B/mosjob" 100 0 "$W/x2.a" "$W/x2.b" < /dev/null > "$W/x2.out"
[ $mrc = 1 ] && grep -q "blocked" <<<"$out" && [ $rc = 7 ] && cmp -s "$W/x.out" "$W/x2.out" \
    && ok "a refused move on: the guest resumed on node 2 and finished ($out)" \
    || bad "refused move: mosmigrate rc $mrc ($out), job rc $rc, $(cat "$W/x.err")"

# 2e. signals sent to the job's own pid while it is away (its shell holds the pid) reach it;
#     SIGKILL to that pid ends it there too
away_job() { # away_job STEPS: a mosjob under mosrun on node 1 (run), moved to node 2 (kjob)
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" "$1" 50 "$W/k.a" "$W/k.b" \
        < /dev/null > "$W/k.out" 2> "$W/k.err") &
    run=$!
    kjob=$(started $run)
    on 1 "${AS_USER[@]}" "$B/mosmigrate" "$kjob" "$N2" > /dev/null 2>&1
}
away_job 100
tr '\0' ' ' < "/proc/$kjob/cmdline" | grep -q "mosjob 100 50 " && [ "$(readlink /proc/$kjob/exe)" = "$B/mosjob" ] \
    && ok "while away, the job's pid at home still shows its program and command line" \
    || bad "shell: $(tr '\0' ' ' < /proc/$kjob/cmdline) $(readlink /proc/$kjob/exe)"
"${AS_USER[@]}" kill -INT "$kjob"
wait $run; rc=$?
[ $rc = 7 ] && grep -q "interrupts: 1" "$W/k.out" && ok "SIGINT to the away job's pid reached it once on node 2" \
    || bad "signal to the pid: rc $rc $(tail -2 "$W/k.out") $(cat "$W/k.err")"
away_job 200
"${AS_USER[@]}" kill -KILL "$kjob"
wait $run; rc=$?
wait_until 10 eval '! registered "$kjob" 2'
[ $rc = 137 ] && ! registered "$kjob" 2 \
    && ok "SIGKILL to the away job's pid ends it on node 2; mosrun dies of it (137)" \
    || bad "kill -9 the pid: rc $rc, node 2: $(on 2 "$B/mosps" | grep " $kjob ")"

# 2b. a real interpreter moved mid-computation: the same output as natively
PY='import sys, time
acc = 0
for i in range(30):
    acc = (acc * 31 + sum(k * k for k in range(20000))) % 1000003
    print(i, acc, flush=True)
    time.sleep(0.05)
sys.exit(4)'
(cd "$W" && exec "${AS_USER[@]}" /usr/bin/python3 -c "$PY" > "$W/py.nat") ; py_nat=$?
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" /usr/bin/python3 -c "$PY" > "$W/py.mig" 2> "$W/py.err") &
run=$!
pyjob=$(started $run python3)
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$pyjob" "$N2" 2>&1)
wait $run; py_mig=$?
grep -q "now runs on $N2" <<<"$out" && [ $py_nat = 4 ] && [ $py_mig = 4 ] && cmp -s "$W/py.nat" "$W/py.mig" \
    && ok "python3 moved mid-computation prints what it prints natively" \
    || bad "python: $out rc $py_nat/$py_mig $(diff "$W/py.nat" "$W/py.mig" | head -3 | tr '\n' ' ') $(cat "$W/py.err")"

# 2d. a guest making a call only home can make (fork, exec) is taken home, where the call runs
#     natively; output as natively
PY2='import os, sys, time
for i in range(60):
    print(i, flush=True)
    time.sleep(0.05)
r = os.system("echo child says hi; exit 3")
print("system returned", os.WEXITSTATUS(r), flush=True)
sys.exit(5)'
(cd "$W" && exec "${AS_USER[@]}" /usr/bin/python3 -c "$PY2" > "$W/hc.nat") ; hc_nat=$?
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" /usr/bin/python3 -c "$PY2" > "$W/hc.mig" 2> "$W/hc.err") &
run=$!
hcjob=$(started $run python3)
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$hcjob" "$N3" 2>&1)
wait $run; hc_mig=$?
grep -q "now runs on $N3" <<<"$out" && [ $hc_nat = 5 ] && [ $hc_mig = 5 ] && cmp -s "$W/hc.nat" "$W/hc.mig" \
    && grep -q "system must run at home\|clone must run at home\|clone3 must run at home\|fork must run at home" "$W/mosd3.log" \
    && grep -q "is home, native again" "$W/mosd1.log" \
    && ok "a fork on node 3 took the job home, where it ran natively; output as natively" \
    || bad "home call: $out rc $hc_nat/$hc_mig $(diff "$W/hc.nat" "$W/hc.mig" | head -3 | tr '\n' ' ') $(cat "$W/hc.err") $(grep 'at home' "$W/mosd3.log" | tail -2)"

# 2c. mosrun -r starts a job on another node; stopping that node's mosd sends it home first;
#     restarting mosd at home does not disturb running jobs
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" -r "$N2" "$B/mosjob" 100 50 "$W/r.a" "$W/r.b" \
    < /dev/null > "$W/r.out" 2> "$W/r.err") &
run=$!
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" 100 50 "$W/h.a" "$W/h.b" \
    < /dev/null > "$W/h.out" 2> "$W/h.err") &
run_home=$!
rjob=$(started $run)
wait_until 20 registered "$rjob" 2
[ -n "$rjob" ] && grep -q " $rjob .*$N2 *$N1 " <<<"$(on 2 "$B/mosps")" && ok "mosrun -r $N2 started the job on node 2" \
    || bad "-r: $(on 2 "$B/mosps") $(cat "$W/r.err")"
kill "${MOSD[2]}"; wait "${MOSD[2]}" 2>/dev/null
grep -q " $rjob .*$N1 *$N1 " <<<"$(on 1 "$B/mosps")" && native_home "$rjob" "$run" "$B/mosjob" \
    && ok "stopping node 2's mosd sent its guest home, where it runs natively" \
    || bad "orderly stop: $(on 1 "$B/mosps") $(tail -3 "$W/mosd2.log")"
started $run_home > /dev/null
kill "${MOSD[1]}"; wait "${MOSD[1]}" 2>/dev/null; start_mosd 1; start_mosd 2
wait $run; rc=$?; wait $run_home; rc_home=$?
"$B/mosjob" 100 0 "$W/r2.a" "$W/r2.b" < /dev/null > "$W/r2.out"
[ $rc = 7 ] && [ $rc_home = 7 ] && cmp -s "$W/r.out" "$W/r2.out" && cmp -s "$W/h.out" "$W/r2.out" \
    && ok "both jobs finished correctly across the home mosd's restart" \
    || bad "restart: rc $rc/$rc_home $(diff "$W/r.out" "$W/r2.out" | head -3 | tr '\n' ' ')"
wait_mosd 1 2

# 2b. a job that opens and closes a file every millisecond, moved: every file it opened up to
# the very freeze must be its deputy's (they were taken before the freeze once, and files
# opened in between were lost, their numbers given to the next open)
mkdir -m 777 "$W/op"
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosopener" "$W/op" 3000 \
    < /dev/null > "$W/op.out" 2> "$W/op.err") &
run=$!
job=$(started $run mosopener)
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$job" "$N2" 2>&1)
wait $run; rc=$?
if ! grep -q "now runs on $N2" <<<"$out"; then
    bad "precondition: the opener did not move: $out"
else
    odd=$(cd "$W/op" && for f in f*; do printf 'open %s\nend\n' "${f#f}" | cmp -s - "$f" || echo "$f"; done | head -3)
    [ $rc = 0 ] && [ "$(ls "$W/op" | wc -l)" = 3000 ] && [ -z "$odd" ] \
        && ok "a job opening and closing files while it moves: all 3000 files whole" \
        || bad "opener: rc=$rc $(cat "$W/op.err") files $(ls "$W/op" | wc -l), wrong: $odd"
fi

# 3. bad requests: one line, status 1, and the job goes on
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" 30 50 "$W/f.a" "$W/f.b" \
    < /dev/null > "$W/f.out" 2>&1) &
run=$!
job=$(started $run)
refused() { # refused NAME PATTERN CMD...
    local name=$1 pat=$2; shift 2
    local o; o=$("$@" 2>&1); local rc=$?
    [ $rc = 1 ] && grep -q -- "$pat" <<<"$o" && [ "$(wc -l <<<"$o")" = 1 ] && ok "$name" || bad "$name: rc=$rc $o"
}
refused "unknown node refused" "unknown node 'nosuch'" on 1 "${AS_USER[@]}" "$B/mosmigrate" "$job" nosuch
refused "another user may not move it" "permission denied" on 1 setpriv --reuid=65533 --regid=65533 --clear-groups "$B/mosmigrate" "$job" "$N2"
kill "${MOSD[3]}"; wait "${MOSD[3]}" 2>/dev/null
refused "a dead node is refused" "cannot reach $N3" on 1 "${AS_USER[@]}" "$B/mosmigrate" "$job" "$N3"
refused "not a mos job" "is not a mos job" on 1 "$B/mosmigrate" 1 "$N2"
wait $run; rc=$?
[ $rc = 7 ] && grep -q "^step 30 " "$W/f.out" && ok "after every refusal the job finished at home" || bad "job after refusals: rc=$rc $(tail -2 "$W/f.out")"
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" sh -c 'sleep 2; echo done' > "$W/s.out" 2>&1) &
run=$!
shjob=$(started $run sh)
wait_until 10 pgrep -P "$shjob" sleep > /dev/null
refused "a job with a child process stays" "has child processes" on 1 "${AS_USER[@]}" "$B/mosmigrate" "$shjob" "$N2"
wait $run; grep -q done "$W/s.out" && ok "the refused job finished" || bad "sh job: $(cat "$W/s.out")"

# 4. the target dies while the job streams to it: the job goes on at home, nothing lost
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" 30 50 "$W/t.a" "$W/t.b" 600 \
    < /dev/null > "$W/t.out" 2> "$W/t.err") &
run=$!
for _ in $(seq 100); do grep -q "^step 1 " "$W/t.out" 2>/dev/null && break; sleep 0.1; done
started $run > /dev/null
# node 1's link slowed for the stream, so node 2 surely dies in the middle of it: once the husk
# the image is restored into exists there
on 1 tc qdisc add dev eth0 root tbf rate 100mbit burst 64kb latency 400ms
(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$(job_of $run)" "$N2" > "$W/t.mig" 2>&1) &
mig=$!
husk_on_2() { ip netns pids "$N2" | xargs -r -I{} cat /proc/{}/comm 2>/dev/null | grep -qx mos-husk; }
for _ in $(seq 600); do husk_on_2 && break; kill -0 $mig 2>/dev/null || break; sleep 0.05; done
ip netns pids "$N2" | xargs -r kill -9
wait $mig; mrc=$?
on 1 tc qdisc del dev eth0 root
wait $run; rc=$?
"$B/mosjob" 30 0 "$W/t2.a" "$W/t2.b" 600 < /dev/null > "$W/t2.out"
[ $mrc = 1 ] && [ $rc = 7 ] && cmp -s "$W/t.out" "$W/t2.out" && cmp -s "$W/t.a" "$W/t2.a" \
    && ok "target killed mid-migration: the job finished at home, output complete ($(cat "$W/t.mig"))" \
    || bad "target death: mosmigrate rc $mrc ($(cat "$W/t.mig")), job rc $rc, $(diff "$W/t.out" "$W/t2.out" | head -3 | tr '\n' ' ')"
start_mosd 2
wait_mosd 2

# 5. the node running a guest dies: the deputy says so once and exits 113
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" 200 50 "$W/d.a" "$W/d.b" \
    < /dev/null > "$W/d.out" 2> "$W/d.err") &
run=$!
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$(started $run)" "$N2" 2>&1)
ip netns pids "$N2" | xargs -r kill -9   # everything on node 2: mosd, the supervisor, the guest
wait $run; rc=$?
[ $rc = 113 ] && grep -q "lost with node $N2" "$W/d.err" && ok "a dead guest node: mosrun reports the loss, exit 113" \
    || bad "dead node: rc=$rc, $out, $(cat "$W/d.err")"

lab_result
