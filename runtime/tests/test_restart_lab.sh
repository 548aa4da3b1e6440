#!/bin/bash
# A mosd that restarts strands no job. Node 1's mosd is killed (SIGKILL) and started again
# while one job runs at home and one runs away on node 3 (moved there from node 2): the new mosd takes both back from its
# state file (mosps lists them, their mosruns reconnect), the away one is brought home, the
# home one can still be moved, and both print what a native run prints. Node 2's mosd is killed
# and started again while it hosts a guest: the guest's supervisor ran on, the new mosd
# re-adopts it (listed, movable) and the guest finishes right. A state file or directory that
# is not root's alone, a truncated file, or a record naming a process that is not the job:
# one line in the log, nothing taken back, the process left alone, mosd up.
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init rs

lab_up 3 --set balance=0
declare -A MOSD
start_mosd() { "$LAB" exec --uncapped "$1" "$B/mosd" >> "$W/mosd$1.log" 2>&1 & MOSD[$1]=$!; }
# restart_mosd I [CMD...]: SIGKILL node I's mosd (no orderly stop: a crash; its children live
# on), run CMD, start it again and wait for its socket (the dead one's is removed first, or
# wait_mosd would find it)
restart_mosd() {
    local n=$1; shift
    kill -9 "${MOSD[$n]}"; wait "${MOSD[$n]}" 2>/dev/null
    rm -f "/run/mos-lab/$MOS_LAB_NAME/mosd-${MOS_LAB_NAME}$n.sock"
    [ $# -gt 0 ] && "$@"
    start_mosd "$n"
    wait_mosd "$n"
}
for i in 1 2 3; do start_mosd $i; done
wait_mosd 1 2 3
STATE=/run/mos-lab/$MOS_LAB_NAME/state-$N1
seq 1 2000 > "$W/input"
job_registered() { local j; j=$(pgrep -P "$1" | head -1); [ -n "$j" ] && registered "$j" "${2:-1}"; }
started() { wait_until 20 job_registered "$1"; pgrep -P "$1" | head -1; }
# listed N PID WHERE: node N's mosps shows PID running on WHERE
listed() { on "$1" "$B/mosps" 2>/dev/null | awk -v p="$2" -v w="$3" 'NR > 1 && $1 == p && $0 ~ " " w " " { f = 1 } END { exit !f }'; }
mosrun_job() { # NAME STEPS [MIB]: mosrun mosjob on node 1 as nobody, its files under W/NAME.*
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" "$2" 40 "$W/$1.a" "$W/$1.b" \
        ${3:-} < "$W/input" > "$W/$1.out" 2> "$W/$1.err") &
}
same_as_native() { # NAME RC [REF]: its output, files and exit status are the native run's
    local f d=""
    for f in out a b; do cmp -s "$W/${3:-nat}.$f" "$W/$1.$f" || d="$d $f"; done
    [ -z "$d" ] && [ "$2" = 7 ] && ok "$1: output, both files and exit status 7 identical to the native run" \
        || bad "$1: differs in [$d ] or exit $2 ($(tail -2 "$W/$1.err" | tr '\n' ' '))"
}
age_of() { on "$1" "$B/mosps" | awk -v p="$2" 'NR > 1 && $1 == p { sub("s$", "", $5); print $5 }'; } # N PID: seconds
log_has() { grep -qF -- "$2" "$W/mosd$1.log"; } # log_has N TEXT
# log_since N LINES TEXT: how many lines of node N's log after the first LINES hold TEXT
log_since() { tail -n +$(($2 + 1)) "$W/mosd$1.log" | grep -cF -- "$3"; }
log_since_has() { [ "$(log_since "$@")" -gt 0 ]; }

# the reference: the job natively
(cd "$W" && exec "${AS_USER[@]}" "$B/mosjob" 250 40 "$W/nat.a" "$W/nat.b" < "$W/input" > "$W/nat.out")
[ $? = 7 ] && ok "native reference run" || bad "native run failed"

# 1. home mosd restart: job A at home, job B away on node 2
mosrun_job home 250; run_a=$!
mosrun_job away 250; run_b=$!
a=$(started $run_a); b=$(started $run_b)
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$b" "$N2" 2>&1)
out2=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$b" "$N3" 2>&1)
grep -q "now runs on $N2" <<<"$out" && grep -q "now runs on $N3" <<<"$out2" \
    && ok "job B moved to node 2, then on to node 3" || bad "B to nodes 2, 3: $out; $out2"
perms=$(stat -c '%U %a' "$STATE" "$STATE/jobs.json" 2>&1 | tr '\n' ' ')
[ "$perms" = "root 700 root 600 " ] && ok "state directory root 0700, file root 0600" || bad "state perms: $perms"
wait_until 10 eval '[ "$(age_of 1 "$a")" -ge 3 ]' # so that a restarted AGE would show
restart_mosd 1
wait_until 10 listed 1 "$a" "$N1" && wait_until 10 listed 1 "$b" "$N3" \
    && ok "restarted home mosd lists job A at home and job B on node 3" \
    || bad "mosps after restart: $(on 1 "$B/mosps" 2>&1 | tr '\n' '|')"
age=$(age_of 1 "$a")
[ "${age:-0}" -ge 3 ] && ok "job A's age goes on across the restart (${age}s)" || bad "A's age after the restart: '$age'"
wait_until 10 log_has 1 "(pid $a, on $N1): its mosrun is back"
log_has 1 "(pid $a, on $N1): its mosrun is back" && ok "job A's mosrun reconnected" || bad "A's mosrun: $(grep -i mosrun "$W/mosd1.log" | tail -3)"
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$b" home 2>&1)
grep -q "now runs on $N1" <<<"$out" && ok "job B brought home after the restart" || bad "B home: $out"
st=$(grep -E 'Seccomp|TracerPid|PPid' /proc/$b/status 2>/dev/null | tr -s '\t ' ' ' | tr '\n' ' ')
grep -q "Seccomp: 0 " <<<"$st" && grep -q "TracerPid: 0 " <<<"$st" \
    && ok "job B runs natively at home again (its shell, no filter, no tracer)" || bad "B at home: $st"
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$a" "$N2" 2>&1)
grep -q "now runs on $N2" <<<"$out" && ok "job A moves to node 2 after the restart (its mosrun serves it)" || bad "A to node 2: $out"
wait $run_a; rc_a=$?
wait $run_b; rc_b=$?
same_as_native home $rc_a
same_as_native away $rc_b
wait_until 10 eval "! registered $a && ! registered $b" && ok "both ended jobs left the table" \
    || bad "left over: $(on 1 "$B/mosps" | tr '\n' '|')"

# 1b. only the job's own mosrun takes it back: while its mosrun is stopped (it cannot
# reconnect), the same user from another process, and root, are refused; the job is listed but
# cannot be moved from home; once mosrun runs again it reconnects and the job moves
mosrun_job held 250; run_h=$!
h=$(started $run_h)
kill -STOP $run_h
restart_mosd 1
reattach() { # as WHO (user|root): the reply to a reattach for pid h
    local who=(); [ "$1" = user ] && who=("${AS_USER[@]}")
    on 1 "${who[@]}" /usr/bin/python3 -c 'import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall((json.dumps({"op": "reattach", "pid": int(sys.argv[2]), "where": "home"}) + "\n").encode())
print(s.makefile().readline().strip())' "/run/mos-lab/$MOS_LAB_NAME/mosd-$N1.sock" "$h"
}
r_user=$(reattach user); r_root=$(reattach root)
grep -q "permission denied" <<<"$r_user" && grep -q "permission denied" <<<"$r_root" \
    && ok "a reattach from another process of the job's user, or from root, is refused" \
    || bad "foreign reattach: user: $r_user; root: $r_root"
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$h" "$N2" 2>&1)
wait_until 10 listed 1 "$h" "$N1" && grep -q "has not reconnected" <<<"$out" \
    && ok "while its mosrun is away the job is listed, and a move from home is refused in one line" \
    || bad "held job: $out; $(on 1 "$B/mosps" | tr '\n' '|')"
kill -CONT $run_h
wait_until 10 log_has 1 "(pid $h, on $N1): its mosrun is back"
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$h" "$N2" 2>&1)
grep -q "now runs on $N2" <<<"$out" && ok "its own mosrun reconnected; the job moves" || bad "held job after CONT: $out"
wait $run_h; same_as_native held $?

# 1c. killed in the middle of a move (400 MiB streaming): the worker, mosd's child, carries
# the move through alone; the new mosd's record still says home, and the job's mosrun, its
# deputy on node 2 now, reattaches and says where it runs: listed there, and brought home
(cd "$W" && exec "${AS_USER[@]}" "$B/mosjob" 250 40 "$W/natm.a" "$W/natm.b" 400 < "$W/input" > "$W/natm.out")
mosrun_job mid 250 400; run_m=$!
m=$(started $run_m)
lines=$(wc -l < "$W/mosd1.log")
( on 1 "${AS_USER[@]}" "$B/mosmigrate" "$m" "$N2" > "$W/mid.move" 2>&1 ) &
# the worker must exist when mosd dies: killed before it forks, mosd leaves the job at home
# (nothing moved, and the 10 s job may end before it is looked for on node 2)
wait_until 30 log_since_has 1 "$lines" "(pid $m): worker " \
    || bad "mid-move: no migration worker in 30 s: $(tail -n +$((lines + 1)) "$W/mosd1.log" | tr '\n' '|')"
restart_mosd 1
landed=$(log_since 1 "$lines" "(pid $m) now runs on")
wait_until 20 listed 1 "$m" "$N2" \
    && ok "killed mid-move ($([ "$landed" = 0 ] && echo "before the move landed" || echo "just after it landed")): the new mosd lists the job on node 2" \
    || bad "mid-move: $(on 1 "$B/mosps" | tr '\n' '|'); $(on 2 "$B/mosps" | tr '\n' '|')"
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$m" home 2>&1)
grep -q "now runs on $N1" <<<"$out" && ok "the job moved while mosd was down is brought home" || bad "mid home: $out"
wait $run_m; same_as_native mid $? natm

# 2. remote mosd restart: job C on node 2 when node 2's mosd is killed and started again; it is
# then moved on to node 3 and home. Job D stays on node 2 and ends there.
mosrun_job rc 250; run_c=$!
mosrun_job rd 150; run_d=$!
c=$(started $run_c); d=$(started $run_d)
for j in $c $d; do
    out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$j" "$N2" 2>&1)
    grep -q "now runs on $N2" <<<"$out" || bad "pid $j to node 2: $out"
done
lines=$(wc -l < "$W/mosd2.log")
restart_mosd 2
# listed comes from the state file; a move needs the supervisor's line back too (a CI run
# once moved C in between: "its supervisor is not reached yet")
wait_until 10 listed 2 "$c" "$N2" && wait_until 10 listed 2 "$d" "$N2" &&
    wait_until 20 log_since_has 2 "$lines" "pid $c) re-adopted" &&
    wait_until 20 log_since_has 2 "$lines" "pid $d) re-adopted" \
    && ok "restarted node 2 lists both guests again (their supervisors re-adopted)" \
    || bad "node 2 after restart: $(on 2 "$B/mosps" 2>&1 | tr '\n' '|') $(grep -E 'adopt|dropped' "$W/mosd2.log" | tr '\n' '|')"
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$c" "$N3" 2>&1)
out2=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$c" home 2>&1)
grep -q "now runs on $N3" <<<"$out" && grep -q "now runs on $N1" <<<"$out2" \
    && ok "guest C, re-adopted, moves on to node 3 and then home" || bad "C to 3, home: $out; $out2"
wait $run_c; rc_c=$?
wait $run_d; rc_d=$?
same_as_native rc $rc_c
[ "$rc_d" = 7 ] && cmp -s <(grep '^step' "$W/rd.out") <(grep '^step' "$W/nat.out" | head -150) \
    && ok "guest D ended on node 2 after the restart, its steps identical to the native run's" \
    || bad "D: exit $rc_d ($(tail -2 "$W/rd.err" | tr '\n' ' '))"
wait_until 10 eval "! listed 2 $d $N2 && ! listed 2 $c $N2" && ok "node 2 forgets guest C once it left and D once it ended" || bad "C or D still listed on 2"

left=$(ls "/run/mos-lab/$MOS_LAB_NAME/state-$N2" 2>&1 | grep -v '^jobs.json$' | tr '\n' ' ')
[ -z "$left" ] && ok "nothing left in node 2's state directory but its table" || bad "left in node 2's state: $left"

# 3. a state file mosd must not trust. Each time job E runs at home: with a file or a directory
# not root's alone, or a truncated file, the new mosd takes nothing back, says so in one line,
# stays up, and E runs on unmanaged to the same end.
bad_state() { # WHAT PREPARE-CMD LOG-TEXT
    local what=$1 prep=$2 text=$3 e run_e lines
    mosrun_job "e$what" 200; run_e=$!
    e=$(started $run_e)
    lines=$(wc -l < "$W/mosd1.log")
    restart_mosd 1 eval "$prep"
    wait_until 5 log_since_has 1 "$lines" "$text"
    n=$(log_since 1 "$lines" "$text")
    [ "$n" = 1 ] && ok "$what: one line in the log" || bad "$what: $n lines for '$text': $(tail -n +$((lines + 1)) "$W/mosd1.log" | tr '\n' '|')"
    on 1 "$B/mosctl" status >/dev/null 2>&1 && ! registered "$e" && kill -0 "$e" \
        && ok "$what: mosd up, job E not taken back, still running" || bad "$what: mosd or E: $(on 1 "$B/mosps" 2>&1 | tr '\n' '|')"
    wait $run_e; rc=$?
    [ "$rc" = 7 ] && ok "$what: job E ended as natively (exit 7)" || bad "$what: E exit $rc"
    chmod 700 "$STATE"; chown root "$STATE"
}
bad_state "file-mode" "chmod 644 $STATE/jobs.json" "is not root's with mode 0600"
bad_state "file-owner" "chown 65534 $STATE/jobs.json" "is not root's with mode 0600"
bad_state "dir-mode" "chmod 755 $STATE" "state directory refused"
bad_state "truncated" "truncate -s 100 $STATE/jobs.json" "not whole JSON"

# 4. a well-formed record naming someone else's process (its pid and start time, but another
# parent than the record's mosrun: a pid reused, or a planted record): dropped with a line, the
# process untouched and not listed
"${AS_USER[@]}" sleep 60 & foreign=$!
wait_until 5 test -e /proc/$foreign
start=$(awk '{ print $22 }' /proc/$foreign/stat)
plant() {
    python3 - "$STATE/jobs.json" "$N1" "$foreign" "$start" <<'EOF'
import json, os, sys
path, node, pid, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ident = {k: 65534 for k in ("ruid", "euid", "suid", "fsuid", "rgid", "egid", "sgid", "fsgid", "status_uid")}
ident.update(cap_prm="0", cap_eff="0", cap_amb="0", start=start, exe_setid=0)
rec = dict(guest=0, id=77, pid=pid, home_pid=pid, uid=65534, gid=65534, locked=0, cmd="planted",
           home=node, where=node, owner_pid=2, owner_fd_min=10, ident=ident)
with open(path + ".new", "w") as f:
    json.dump(dict(version=1, node=node, jobs=[rec]), f)
os.chmod(path + ".new", 0o600)
os.rename(path + ".new", path)
EOF
}
lines=$(wc -l < "$W/mosd1.log")
restart_mosd 1 plant
wait_until 5 log_since_has 1 "$lines" "job 77: pid $foreign is another process"
log_since_has 1 "$lines" "job 77: pid $foreign is another process" \
    && ! registered "$foreign" && kill -0 "$foreign" \
    && ok "a record naming a process that is not the job: dropped with a line, the process untouched" \
    || bad "planted record: $(tail -n +$((lines + 1)) "$W/mosd1.log" | tr '\n' '|')"
kill $foreign

lab_result
