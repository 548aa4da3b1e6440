#!/bin/bash
# mosrun -E across lab nodes: a user's program runs natively on node 2 with its stdio on node 1
# (stdin piped in, stdout and stderr apart, 1 MiB of binary data through cat), at nice 0 and
# with the user's locked-memory limit rather than mosd's, its exit status
# and signals pass through, mosps lists it and mosmigrate refuses it; a dying relay or node
# gives 113; unknown and blocked nodes, root and a missing program are refused with one line.
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init ex

lab_up 3 --set balance=0
declare -A MOSD
start_mosd() { "$LAB" exec --uncapped "$1" "$B/mosd" >> "$W/mosd$1.log" 2>&1 & MOSD[$1]=$!; }
for i in 1 2 3; do start_mosd $i; done
wait_mosd 1 2 3
A2=$("$LAB" addr 2)
erun() { on 1 "${AS_USER[@]}" "$B/mosrun" "$@"; }  # mosrun as the user on node 1
one_line() { [ "$(grep -c . "$1")" = 1 ]; }
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null); [ -n "$st" ] && [ "${st#Z}" = "$st" ]; }  # zombies are dead
T=$((5000 + $$ % 1000))  # sleep lengths no other test uses, to find our programs by name
prog_of() { pgrep -u 65534 -x -f "sleep $T.$1" | head -1; }
wait_prog() { for _ in $(seq 100); do [ -n "$(prog_of "$1")" ] && break; sleep 0.1; done; prog_of "$1"; }

# 1. where it runs, stdin, stdout and stderr apart, the exit status, cwd and environment
printf 'line one\nline two\n' > "$W/in"
SCRIPT='ip -o -4 addr show dev eth0 | awk "{print \$4}"; echo "uid $(id -u) cwd $(pwd) var $MOS_EX_VAR"
        while read l; do echo "out: $l"; echo "err: $l" >&2; done; exit 7'
(cd "$W" && MOS_EX_VAR=carried erun -E -r "$N2" "$SCRIPT" < "$W/in" > "$W/1.out" 2> "$W/1.err"); rc=$?
printf '%s/24\nuid 65534 cwd %s var carried\nout: line one\nout: line two\n' "$A2" "$W" > "$W/1.exp"
printf 'err: line one\nerr: line two\n' > "$W/1.exp.err"
cmp -s "$W/1.out" "$W/1.exp" && ok "runs on $N2 ($A2) as the user, in the same cwd, with the environment; stdin piped from home reaches it" \
    || bad "stdout: $(diff "$W/1.exp" "$W/1.out" | tr '\n' ' ')"
cmp -s "$W/1.err" "$W/1.exp.err" && ok "stderr arrives apart from stdout" || bad "stderr: $(cat "$W/1.err")"
mosd_nice=$(ps -o ni= -p "$(pgrep -x mosd | head -1)" | tr -d ' ')
out=$(erun -E -r "$N2" nice 2>&1)
[ "$mosd_nice" = -10 ] && [ "$out" = 0 ] && ok "the program runs at nice 0, not at mosd's $mosd_nice" \
    || bad "niceness: mosd $mosd_nice, program '$out'"
[ $rc = 7 ] && ok "exit status 7 passes through" || bad "exit status $rc"
# locked memory: mosd has its own (unlimited for verbs under systemd); the program gets the
# user's limit at home, as the kernel holds it for mosrun, never more than mosd has
mosd_ml=$(awk '/^Max locked memory/ {print $4 ":" $5}' "/proc/$(pgrep -x mosd | head -1)/limits")
out=$(on 1 prlimit --memlock=1264640:2402304 "${AS_USER[@]}" "$B/mosrun" -E -r "$N2" \
      'echo "$(ulimit -S -l):$(ulimit -H -l)"' 2>&1)
[ "$mosd_ml" != "1264640:2402304" ] && [ "$out" = "1235:2346" ] \
    && ok "the program's locked-memory limit is the user's at home (1235:2346 KiB), not mosd's ($mosd_ml bytes)" \
    || bad "memlock: mosd $mosd_ml, program '$out'"

# 2. 1 MiB of binary data through cat, both ways, byte for byte
head -c 1048576 /dev/urandom > "$W/bin"
erun -E -r "$N2" cat < "$W/bin" > "$W/bin.out" 2> "$W/bin.err"; rc=$?
[ $rc = 0 ] && cmp -s "$W/bin" "$W/bin.out" && ok "1 MiB of binary stdin comes back identical through a remote cat" \
    || bad "binary: rc $rc, $(cmp "$W/bin" "$W/bin.out" 2>&1) $(cat "$W/bin.err")"

# 3. while it runs: mosps shows it on node 2, native; mosmigrate refuses it; SIGTERM ends it
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" -E -r "$N2" \
    'trap "echo got TERM; exit 9" TERM; echo started; while :; do sleep 0.1; done' \
    < /dev/null > "$W/3.out" 2> "$W/3.err") &
run=$!
for _ in $(seq 100); do grep -q started "$W/3.out" 2>/dev/null && break; sleep 0.1; done
ps1=$(on 1 "$B/mosps")
grep -q " $run .*$N2 *$N1 .*native (-E) .*sh -c" <<<"$ps1" && ok "mosps at home shows it (WHERE $N2, STAY native (-E))" \
    || bad "mosps: $ps1"
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$run" "$N3" 2>&1); mrc=$?
[ $mrc = 1 ] && grep -q "runs natively on $N2 (mosrun -E): it cannot migrate" <<<"$out" && ok "mosmigrate refuses it: $out" \
    || bad "mosmigrate: rc $mrc $out"
kill -TERM $run; wait $run; rc=$?
[ $rc = 9 ] && grep -q "got TERM" "$W/3.out" && ok "SIGTERM to mosrun reaches the program's handler; its status 9 comes back" \
    || bad "TERM with handler: rc $rc $(cat "$W/3.out" "$W/3.err")"
(exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" -E -r "$N2" sleep $T.0 < /dev/null > /dev/null 2> "$W/3b.err") &
run=$!
prog=$(wait_prog 0)
kill -TERM $run; wait $run; rc=$?
wait_until 5 eval '! alive "$prog"'
[ $rc = 143 ] && [ -n "$prog" ] && ! alive "$prog" && ok "SIGTERM: the remote program dies of it, mosrun too (143)" \
    || bad "TERM: rc $rc, program '$prog' $(alive "$prog" && echo alive) $(cat "$W/3b.err")"
grep -q " $run " <<<"$(on 1 "$B/mosps")" && bad "mosps still lists the ended job" || ok "the ended job left mosps"

# 4. the relay dies (and with it the program): mosrun says so once and exits 113
(exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" -E -r "$N2" sleep $T.1 < /dev/null > /dev/null 2> "$W/4.err") &
run=$!
prog=$(wait_prog 1)
relay=$(ps -o ppid= -p "$prog" | tr -d ' ')
ip netns identify "$relay" | grep -qx "$N2" && ok "the program and its relay run in node 2's namespace" \
    || bad "relay $relay of program $prog is in '$(ip netns identify "$relay")'"
kill -9 "$relay"; wait $run; rc=$?
wait_until 5 eval '! alive "$prog"'
[ $rc = 113 ] && one_line "$W/4.err" && grep -q "lost the link to $N2" "$W/4.err" \
    && ! alive "$prog" && ok "relay killed: program gone, mosrun exits 113: $(cat "$W/4.err")" \
    || bad "relay death: rc $rc, program $prog $(alive "$prog" && echo alive), $(cat "$W/4.err")"

# 5. mosrun killed with SIGKILL: the remote program does not run on
(exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" -E -r "$N2" sleep $T.2 < /dev/null > /dev/null 2>&1) &
run=$!
prog=$(wait_prog 2)
kill -9 $run; wait $run 2>/dev/null
for _ in $(seq 50); do alive "$prog" || break; sleep 0.1; done
[ -n "$prog" ] && ! alive "$prog" && ok "mosrun killed: the relay kills the remote program" \
    || bad "mosrun SIGKILL: program '$prog' still runs"

# 6. refusals: one line, non-zero, nothing left running
refused() { # refused NAME STATUS PATTERN CMD...
    local name=$1 want=$2 pat=$3; shift 3
    "$@" < /dev/null > "$W/r.out" 2> "$W/r.err"; local rc=$?
    [ $rc = "$want" ] && grep -q -- "$pat" "$W/r.err" && one_line "$W/r.err" && [ ! -s "$W/r.out" ] \
        && ok "$name: $(cat "$W/r.err")" || bad "$name: rc=$rc $(cat "$W/r.err")"
}
refused "a missing program gives 127" 127 "cannot run no-such-prog-ex on $N2" erun -E -r "$N2" no-such-prog-ex
refused "an unknown node is refused" 1 "unknown node 'nosuch'" erun -E -r nosuch true
on 2 "$B/mosctl" block > /dev/null
refused "a blocked node is refused" 1 "node $N2 is blocked" erun -E -r "$N2" true
on 2 "$B/mosctl" unblock > /dev/null
refused "root is refused" 1 "root's programs do not run" on 1 "$B/mosrun" -E -r "$N2" true
refused "-E with -R is bad usage" 2 "no -C or -R" erun -E -R /tmp/x
# a cwd that does not exist (deleted here; nobody's home directory does not exist either)
(cd "$W" && mkdir gone && cd gone && rmdir ../gone && erun -E -r "$N2" pwd > "$W/6.out" 2> "$W/6.err"); rc=$?
out="$(cat "$W/6.out" "$W/6.err")"
[ $rc = 0 ] && [ "$(grep -c "does not exist on $N2; running in /" "$W/6.err")" = 1 ] && [ "$(cat "$W/6.out")" = / ] \
    && ok "a cwd missing there: it runs in / and says so once" || bad "missing cwd: rc $rc $out"

# 7. -E alone picks the best node; it runs wherever that is
out=$(erun -E 'ip -o -4 addr show dev eth0 | awk "{print \$4}"' 2>&1); rc=$?
[ $rc = 0 ] && grep -q "^10\." <<<"$out" && ok "-E alone (the best node) runs it at $out" || bad "-E -b: rc $rc $out"

# 8. a whole node dies under a running program: 113
(exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" -E -r "$N3" sleep $T.3 < /dev/null > /dev/null 2> "$W/8.err") &
run=$!
prog=$(wait_prog 3)
ip netns pids "$N3" | xargs -r kill -9
wait $run; rc=$?
[ $rc = 113 ] && grep -q "lost the link to $N3" "$W/8.err" && ok "node 3 dies: mosrun exits 113: $(cat "$W/8.err")" || bad "node death: rc $rc $(cat "$W/8.err")"

# no mosd at home
kill "${MOSD[1]}"; wait "${MOSD[1]}" 2>/dev/null
refused "no mosd at home" 1 "no mosd on this node" erun -E -r "$N2" true

lab_result
