#!/bin/bash
# Forwarded system calls end to end: a workload run as a guest whose calls a deputy serves must
# print exactly what it prints natively, leave the same files, exit with the same status, and
# get home signals; faults give clear errors and distinct exit statuses.
#   test_forward.sh local   deputy and guest on this host (loopback)
#   test_forward.sh lab     deputy on lab node 1, guest on lab node 2
set -u
MODE=${1:-local}
CHECK=$MOS_BIN/mos-forward-check
T=$(mktemp -d /tmp/mos-fwd.XXXXXX)
passes=0; fails=0
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
cleanup() {
    jobs -p | xargs -r kill -9 2>/dev/null
    [ "$MODE" = lab ] && "$LAB" down >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT

if [ "$MODE" = lab ]; then
    LAB=$MOS_SRC/tests/lab/mos-lab
    export MOS_LAB_NAME=fwd$$
    "$LAB" up 2 >/dev/null || { echo "FAIL: lab up"; echo "0 passed, 1 failed"; exit 1; }
    HOME_RUN=("$LAB" exec 1); AWAY_RUN=("$LAB" exec 2); HOST=10.77.0.1
else
    HOME_RUN=(); AWAY_RUN=(); HOST=127.0.0.1
fi
# A deputy listens on a port the kernel picks and writes it to a file once it listens: no fixed
# sleep before the guest connects, no port taken by another test.
home_port() {   # FILE PID: the port, once written; 1 (refused at once) if the deputy died first
    for _ in $(seq 1200); do
        [ -s "$1" ] && { cat "$1"; return 0; }
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    echo "deputy $2 never listened" >&2; echo 1; return 1
}
# a deputy that died early closes its stdin fifo: the write then fails and the check reports it,
# instead of SIGPIPE ending the script with no word on what went wrong
trap '' PIPE
wait_line() { for _ in $(seq 1200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
export MOS_TEST_TOKEN=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

head -c 300000 /dev/urandom | od -An -tx1 > "$T/input"
mkdir -p "$T/native/dir" "$T/away/dir"

# 1. the workload, natively and as a guest
(cd "$T/native" && "$CHECK" native "$T/native/file" "$T/native/dir" < "$T/input" > out 2> err)
native_rc=$?
(cd "$T/away" && exec "${HOME_RUN[@]}" "$CHECK" home 0 "$T/p1" < "$T/input" > out 2> err) &
home=$!
P=$(home_port "$T/p1" $home)
# the home pid the guest must see: the deputy process itself (exec keeps the pid)
"${AWAY_RUN[@]}" "$CHECK" away $HOST $P $home "$T/away/file" "$T/away/dir" > "$T/away/guest.out" 2> "$T/away/guest.err"
away_rc=$?
wait $home; home_rc=$?
[ "$native_rc" = 3 ] && ok "native run exits 3" || bad "native run exited $native_rc: $(cat "$T/native/err")"
[ "$home_rc" = 3 ] && [ "$away_rc" = 3 ] && ok "guest's exit status reaches home (3)" \
    || bad "exit status: home $home_rc, away $away_rc; $(cat "$T/away/err" "$T/away/guest.err")"
if cmp -s "$T/native/out" "$T/away/out"; then ok "output identical to the native run ($(wc -l < "$T/native/out") lines)"
else bad "outputs differ:"; diff "$T/native/out" "$T/away/out" | head -20; fi
grep -q FAILED "$T/native/out" && bad "the native run itself failed a check: $(grep FAILED "$T/native/out")"
cmp -s "$T/native/file" "$T/away/file" && ok "files written at home are identical" || bad "files differ"
[ ! -s "$T/away/guest.out" ] && ok "nothing printed on the guest's node" || bad "guest node printed: $(head -3 "$T/away/guest.out")"

# 2. SIGINT at home reaches the guest's handler; the interrupted read restarts (SA_RESTART)
mkfifo "$T/n.in"; ("$CHECK" native-sig < "$T/n.in" > "$T/n.out") & SIGPID=$!
exec 7> "$T/n.in"; for _ in $(seq 100); do grep -q ready "$T/n.out" 2>/dev/null && break; sleep 0.05; done
sleep 0.2; kill -INT $SIGPID; wait_line "$T/n.out" "got SIGINT"; echo hello >&7; exec 7>&-; wait $SIGPID
mkfifo "$T/h.in"
("${HOME_RUN[@]}" "$CHECK" home 0 "$T/p2" < "$T/h.in" > "$T/h.out" 2> "$T/h.err") & SIGPID=$!
exec 7> "$T/h.in"
P=$(home_port "$T/p2" $SIGPID)
("${AWAY_RUN[@]}" "$CHECK" away-sig $HOST $P $SIGPID > /dev/null 2>&1) & awaypid=$!
for _ in $(seq 100); do grep -q ready "$T/h.out" 2>/dev/null && break; sleep 0.05; done
sleep 0.2; kill -INT $SIGPID; wait_line "$T/h.out" "got SIGINT"; echo hello >&7; exec 7>&-
wait $SIGPID; wait $awaypid
if grep -q "handler ran: yes, read 6 bytes" "$T/h.out" && cmp -s "$T/n.out" "$T/h.out"; then
    ok "home SIGINT runs the guest's handler and the read restarts, as natively"
else bad "signal: native '$(tail -1 "$T/n.out")', forwarded '$(tail -1 "$T/h.out")' $(cat "$T/h.err")"; fi

# 3. SIGINT with the default action ends the guest, and home reports it as a death by SIGINT
mkfifo "$T/d.in"
("${HOME_RUN[@]}" "$CHECK" home 0 "$T/p3" < "$T/d.in" > "$T/d.out" 2>&1) & dpid=$!
exec 7> "$T/d.in"
P=$(home_port "$T/p3" $dpid)
("${AWAY_RUN[@]}" "$CHECK" away $HOST $P $dpid "$T/d.file" "$T/d.dir" > /dev/null 2>&1) & apid=$!
# the signal is sent once the deputy serves the guest's read of stdin (nothing is ever written)
for _ in $(seq 1200); do grep -qs '^0 0x0 ' /proc/$dpid/task/*/syscall && break; sleep 0.05; done
kill -INT $dpid
wait $dpid; drc=$?; wait $apid; arc=$?
exec 7>&-
[ "$drc" = 130 ] && [ "$arc" = 130 ] && ok "default SIGINT kills the guest; home dies of SIGINT" \
    || bad "default SIGINT: home rc $drc, away rc $arc"

# 4. a home-only call (fork) is refused with ENOSYS by this harness (mosrun migrates home)
("${HOME_RUN[@]}" "$CHECK" home 0 "$T/p4" > "$T/f.out" 2>&1) & fpid=$!
P=$(home_port "$T/p4" $fpid)
"${AWAY_RUN[@]}" "$CHECK" away-fork $HOST $P $fpid > /dev/null 2> "$T/f.err"
wait $fpid
grep -q "fork: Function not implemented" "$T/f.out" && grep -q "needs its home node" "$T/f.err" \
    && ok "fork is a home call, refused here" || bad "fork: $(cat "$T/f.out" "$T/f.err")"

# 5. the node running the guest dies: the deputy says so and exits 99
mkfifo "$T/l.in"
("${HOME_RUN[@]}" "$CHECK" home 0 "$T/p5" < "$T/l.in" > "$T/l.out" 2> "$T/l.err") & lpid=$!
exec 7> "$T/l.in"
P=$(home_port "$T/p5" $lpid)
("${AWAY_RUN[@]}" "$CHECK" away-sig $HOST $P $lpid > /dev/null 2>&1) & apid=$!
for _ in $(seq 100); do grep -q ready "$T/l.out" 2>/dev/null && break; sleep 0.05; done
kill -9 $apid
wait $lpid; lrc=$?
exec 7>&-
[ "$lrc" = 99 ] && grep -q "lost the node running the job" "$T/l.err" && [ "$(wc -l < "$T/l.err")" = 1 ] \
    && ok "lost guest node: one clear line, exit 99" || bad "lost node: rc $lrc, $(cat "$T/l.err")"

# 6. a supervisor without the job's token is refused; the deputy waits for the right one
("${HOME_RUN[@]}" "$CHECK" home 0 "$T/p6" > "$T/w.out" 2> "$T/w.err") & wpid=$!
P=$(home_port "$T/p6" $wpid)
MOS_TEST_TOKEN=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n') \
    "${AWAY_RUN[@]}" "$CHECK" away $HOST $P $wpid "$T/w.file" "$T/w.dir" > /dev/null 2> "$T/w.away"
wrc=$?
"${AWAY_RUN[@]}" "$CHECK" away-fork $HOST $P $wpid > /dev/null 2>&1   # the right one still gets in
wait $wpid; hrc=$?
[ "$wrc" != 0 ] && grep -q "deputy link to $HOST:$P failed" "$T/w.away" && grep -q "refused a link" "$T/w.err" \
    && [ "$hrc" = 0 ] && grep -q "^fork:" "$T/w.out" && ok "wrong token refused on both sides; the right supervisor still served" \
    || bad "token: away rc $wrc, home rc $hrc: $(cat "$T/w.away" "$T/w.err")"

# 7. garbage after a good handshake (a frame in clear, not in a sealed record): a clear
#    error and exit 98, no crash
("${HOME_RUN[@]}" "$CHECK" home 0 "$T/p7" > /dev/null 2> "$T/g.err") & gpid=$!
P=$(home_port "$T/p7" $gpid)
"${AWAY_RUN[@]}" python3 - "$HOST" "$P" "$MOS_TEST_TOKEN" <<'PY'
import hashlib, hmac, os, socket, sys, time
host, port, token = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
s = socket.create_connection((host, port))
def recvn(n):
    b = b""
    while len(b) < n:
        b += s.recv(n - len(b))
    return b
# the handshake of base/include/mos/auth.h: nc out; ns and the deputy's proof in; our proof out
nc = os.urandom(32)
s.sendall(nc)
ns = recvn(64)[:32]
s.sendall(hmac.new(token, b"supervisor" + nc + ns, hashlib.sha256).digest())
# a CALL frame in clear where a sealed record is due (the session's keys are not ours)
s.sendall(b"MDEP\x01\x00\x02\x00\x07\x00\x00\x00garbage")
time.sleep(0.5)
PY
wait $gpid; grc=$?
[ "$grc" = 98 ] && grep -q "malformed message" "$T/g.err" && ok "an unsealed call after the handshake: clear error, exit 98" \
    || bad "garbage: rc $grc, $(cat "$T/g.err")"

# 8. threads: one blocked reading stdin at home while four do file I/O there; stdin is fed only
#    once they report done, so calls served one at a time would never get that far
mkdir -p "$T/tn" "$T/ta"
mkfifo "$T/tn.in" "$T/ta.in"
(cd "$T/tn" && exec "$CHECK" native-threads < "$T/tn.in" > out 2> err) & tnpid=$!
exec 7> "$T/tn.in"
wait_line "$T/tn/out" "others done"; echo "from home" >&7; exec 7>&-
wait $tnpid; tn_rc=$?
(cd "$T/ta" && exec "${HOME_RUN[@]}" "$CHECK" home 0 "$T/p8" < "$T/ta.in" > out 2> err) & tapid=$!
exec 7> "$T/ta.in"
P=$(home_port "$T/p8" $tapid)
("${AWAY_RUN[@]}" "$CHECK" away-threads $HOST $P $tapid > /dev/null 2> "$T/ta.err") & awpid=$!
wait_line "$T/ta/out" "others done"; threads_ok=$?
echo "from home" >&7; exec 7>&-
wait $tapid; ta_rc=$?; wait $awpid
rm -f "$T/tn/err" "$T/ta/err"
if [ "$threads_ok" = 0 ] && [ "$tn_rc" = 0 ] && [ "$ta_rc" = 0 ] && diff -r "$T/tn" "$T/ta" >/dev/null \
    && grep -q "reader got 10 bytes" "$T/ta/out" && ! grep -q FAILED "$T/tn/out"; then
    ok "threads: a read blocked at home holds up no other thread; output and files as natively"
else bad "threads: others done: $threads_ok, rc native $tn_rc away $ta_rc; $(diff -r "$T/tn" "$T/ta" | head -5) $(cat "$T/ta.err" "$T/ta/err" 2>/dev/null)"; fi

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
