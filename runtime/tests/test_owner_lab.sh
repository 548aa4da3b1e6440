#!/bin/bash
# A job is a process, not a bare pid (issue 14 item 2): a user's job that execs a set-uid-root
# program after mosd registered it is never frozen: mosmigrate (a move and a checkpoint) is
# refused with one line saying why, mosps shows that reason, mosd logs it once, and the process
# runs on untouched (not traced, still root's effective uid, still on node 1). The same job
# exec'ing a plain copy of the same program moves (the control: an exec alone is no reason),
# comes home into its own process and moves again (its identity holds across the return).
# A pid reused by another process is covered by test_owner (start time), not provoked here.
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init ow

lab_up 2 --set balance=0
start_mosd() { "$LAB" exec --uncapped "$1" "$B/mosd" >> "$W/mosd$1.log" 2>&1 & }
for i in 1 2; do start_mosd $i; done
wait_mosd 1 2
T=$((6000 + $$ % 1000))  # a sleep length no other test uses, to find our programs by name
mkdir -m 755 "$W/plain" "$W/suid"
cp /bin/sleep "$W/plain/sleep"; cp /bin/sleep "$W/suid/sleep"
chown root:root "$W/suid/sleep"; chmod 4755 "$W/suid/sleep"
[ "$(stat -c %u%A "$W/suid/sleep")" = "0-rwsr-xr-x" ] && ok "a set-uid-root program for the test ($W/suid/sleep)" \
    || { bad "cannot make a set-uid program: $(stat -c '%u %A' "$W/suid/sleep")"; lab_result; exit; }
mig() { on 1 "${AS_USER[@]}" "$B/mosmigrate" "$@"; }
# job N DIR: mosrun on node 1, as the user, of a shell that waits for $W/go.N and then execs
# DIR/sleep T.N; prints mosrun's pid once the shell is registered
job() {
    mkfifo -m 666 "$W/go.$1"
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" /bin/sh -c \
        "read x < $W/go.$1; exec $2/sleep $T.$1" > "$W/$1.out" 2>&1) &
    local run=$! j
    wait_until 20 eval 'j=$(pgrep -P '$run' -x sh) && [ -n "$j" ] && registered "$j"'
    echo $run
}
# go N DIR: the job execs its program; prints the job's pid once it runs it
go() {
    echo go > "$W/go.$1"
    local p pat="^$2/sleep $T.$1\$"  # -U: the real uid (a set-uid one has euid 0)
    wait_until 20 eval 'p=$(pgrep -U 65534 -f "$pat" | head -1) && [ -n "$p" ]'
    echo "$p"
}

# 1. the control: a plain program exec'd after registration moves
run1=$(job 1 "$W/plain")
p1=$(go 1 "$W/plain")
out=$(mig "$p1" "$N2" 2>&1)
grep -q "now runs on $N2" <<<"$out" && ok "a job that execs a plain program after registering moves to node 2" \
    || bad "plain exec did not move: '$out' ($(tail -3 "$W/mosd1.log" | tr '\n' '|'))"
out=$(mig "$p1" home 2>&1)
grep -q "now runs on $N1" <<<"$out" && [ "$(awk '/^PPid:/ { print $2 }' /proc/"$p1"/status)" = "$run1" ] \
    && ok "it comes home natively, mosrun's child again" || bad "1 -> home: '$out'"
out=$(mig "$p1" "$N2" 2>&1)
grep -q "now runs on $N2" <<<"$out" && ok "back home it is still the process registered: it moves again" \
    || bad "second move refused: '$out'"

# 2. the same job exec'ing the set-uid-root copy stays, untouched
run2=$(job 2 "$W/suid")
p2=$(go 2 "$W/suid")
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' /proc/"$p2"/status 2>/dev/null)
[ "$uids" = "65534 0 0 0" ] && ok "the job ($p2) now runs set-uid root (uids $uids)" || bad "set-uid exec: uids '$uids'"
out=$(mig "$p2" "$N2" 2>&1); rc=$?
[ $rc != 0 ] && [ "$(grep -c . <<<"$out")" = 1 ] && grep -q "stays: it runs as uids 65534/0/0/0" <<<"$out" \
    && ok "mosmigrate is refused with one line: $out" || bad "mosmigrate of the set-uid job: rc $rc, '$out'"
out=$(mig "$p2" checkpoint "$W/ckpt.img" 2>&1); rc=$?
[ $rc != 0 ] && grep -q "stays: it runs as uids" <<<"$out" && [ ! -e "$W/ckpt.img" ] \
    && ok "a checkpoint is refused the same way, and no image is written" || bad "checkpoint: rc $rc, '$out'"
st=$(grep -E '^(State|TracerPid|Uid):' /proc/"$p2"/status 2>/dev/null | tr -s '\t ' ' ' | tr '\n' '|')
[ "$st" = "State: S (sleeping)|TracerPid: 0|Uid: 65534 0 0 0|" ] \
    && ok "the process runs on untouched: sleeping, not traced, still set-uid" || bad "after the refusals: '$st'"
ps1=$(on 1 "$B/mosps")
line=$(awk -v p="$p2" '$1 == p' <<<"$ps1")
grep -q "$N1" <<<"$line" && grep -q "runs as uids 65534/0/0/0" <<<"$line" \
    && ok "node 1's mosps shows it at home with the reason it stays" || bad "mosps on 1: '$line'"
! on 2 "$B/mosps" | awk -v p="$p2" '$1 == p { f = 1 } END { exit !f }' \
    && ok "node 2 never got it" || bad "node 2 lists the set-uid job"
logged=$(grep -c "(pid $p2) stays: it runs as uids 65534/0/0/0" "$W/mosd1.log")
[ "$logged" = 2 ] && ok "mosd logs each refusal once (2 requests, 2 lines)" || bad "mosd log lines: $logged"
kill "$p1" "$p2" "$run1" "$run2" 2>/dev/null  # the shells are not ours to wait for (job ran them)
lab_result
