#!/bin/bash
# What mosd lets other nodes do. Without key_file it takes no port (one-node mode, said in one
# log line) and refuses to reach other nodes. With a key, requests forged as another node would
# send them (mospeer) are checked against this node's user database: an exec or guest request
# with gid 0 or an extra group for a plain user is refused in one line. A job with a sandbox of
# its own (no_new_privs here) shows why it stays in mosps, and a move of it is refused.
set -u
B=$MOS_BIN
. "$(dirname "$0")/cli_lib.sh"
T=$(mktemp -d /tmp/mos-peers.XXXXXX)
MOSD=
cleanup() { [ -n "$MOSD" ] && kill "$MOSD" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
chmod 755 "$T"
read -r P1 P2 P3 P4 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
NOBODY=$(id -u nobody); NOGROUP=$(id -g nobody)
id -G nobody | tr ' ' '\n' | grep -qx 0 && { echo "precondition: nobody is in group 0 here"; exit 1; }

start_mosd() { # start_mosd CONF: wait for its command socket
    MOS_CONF=$1 "$B/mosd" 2> "$T/mosd.log" & MOSD=$!
    for _ in $(seq 100); do [ -S "$T/mosd-me.sock" ] && return 0; sleep 0.1; done
    bad "mosd did not start: $(cat "$T/mosd.log")"; return 1
}
stop_mosd() { kill "$MOSD"; wait "$MOSD" 2>/dev/null; MOSD=; rm -f "$T"/mosd-me.sock; }
port_open() { python3 -c '
import socket, sys
s = socket.socket(); s.settimeout(5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"; }

# ---- no key_file: one-node mode
printf '[cluster]\nsocket = %s/mosd-%%n.sock\ntransport_port = %s\ngossip_port = %s\n[nodes]\nme = 127.0.0.1\n' \
    "$T" "$P1" "$P2" > "$T/nokey.conf"
chmod 644 "$T/nokey.conf"
if start_mosd "$T/nokey.conf"; then
    port_open "$P1" && bad "without a key mosd listens on TCP port $P1" \
        || ok "without a key no TCP port is taken"
    n=$(grep -c "no key_file in .*one-node mode" "$T/mosd.log")
    [ "$n" = 1 ] && ok "one log line says why (one-node mode)" || bad "log: $(cat "$T/mosd.log")"
    out=$(cd /tmp && MOS_CONF=$T/nokey.conf setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups \
          "$B/mosrun" -E -r me true 2>&1); rc=$?
    [ "$rc" != 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "no key_file" <<<"$out" \
        && ok "mosrun -E (reached through the port): refused in one line" || bad "-E without a key: $rc $out"
    stop_mosd
fi

# ---- with a key: forged exec and guest requests
printf '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n' > "$T/key"
chmod 600 "$T/key"
printf '[cluster]\nkey_file = %s\nsocket = %s/mosd-%%n.sock\ntransport = tcp\ntransport_port = %s\ngossip_port = %s\n[nodes]\nfar = 198.51.100.1\nme = 127.0.0.1\n' \
    "$T/key" "$T" "$P3" "$P4" > "$T/key.conf"
chmod 644 "$T/key.conf"
TOKEN=$(printf 'ab%.0s' $(seq 32))
exec_req() { # exec_req GID GROUPS-JSON
    printf '{"op":"exec","uid":%d,"gid":%d,"groups":%s,"home":"me","home_addr":"127.0.0.1","home_pid":1,"memlock":[8388608,8388608],"argv":["true"],"env":[],"cwd":"/","umask":18,"port":9,"token":"%s"}' \
        "$NOBODY" "$1" "$2" "$TOKEN"
}
guest_req() { # guest_req UID GID
    printf '{"op":"guest","job":1,"uid":%d,"gid":%d,"deputy_port":9,"home_pid":1,"home":"me","home_addr":"127.0.0.1","token":"%s","cmd":"x"}' \
        "$1" "$2" "$TOKEN"
}
refused() { # refused DESC PATTERN JSON: mosd answers ok=false with PATTERN in its one-line error
    local out
    out=$("$B/mospeer" "$T/key" "127.0.0.1:$P3" "$3" 2>"$T/mospeer.err")
    python3 -c '
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if not r["ok"] and sys.argv[2] in r["error"] and "\n" not in r["error"] else 1)' "$out" "$2" 2>/dev/null \
        && ok "$1" || bad "$1: $out $(cat "$T/mospeer.err")"
}
AS_NOBODY=(env MOS_CONF="$T/key.conf" setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups)
job_stay() { # job_stay CMD-WORD: the STAY of the job whose command starts with it, once listed
    for _ in $(seq 100); do
        "$B/mosps" --json > "$T/ps.json" 2>/dev/null && python3 -c '
import json, sys
jobs = [j for j in json.load(open(sys.argv[1])) if j["cmd"].startswith(sys.argv[2])]
sys.exit(1) if not jobs else print(jobs[0]["pid"], jobs[0]["stay"])' "$T/ps.json" "$1" && return 0
        sleep 0.1
    done
    return 1
}
sandbox_job_stays() {
    (cd /tmp && exec "${AS_NOBODY[@]}" "$B/mosrun" sleep 30) & plain=$!
    (cd /tmp && exec "${AS_NOBODY[@]}" "$B/mosrun" setpriv --no-new-privs sleep 31) & nnp=$!
    read -r pid stay < <(MOS_CONF=$T/key.conf job_stay "sleep 30")
    [ -n "${pid:-}" ] && [ -z "${stay:-}" ] && ok "a plain job has no stay reason" \
        || bad "plain job: pid=${pid:-} stay=${stay:-}"
    read -r pid stay < <(MOS_CONF=$T/key.conf job_stay "setpriv --no-new-privs")
    grep -q "no_new_privs" <<<"${stay:-}" && ok "mosps: a no_new_privs job stays ($stay)" \
        || bad "no_new_privs job: pid=${pid:-} stay=${stay:-}"
    out=$(cd /tmp && "${AS_NOBODY[@]}" "$B/mosmigrate" "${pid:-0}" far 2>&1); rc=$?
    [ "$rc" != 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "stays: has no_new_privs" <<<"$out" \
        && ok "mosmigrate of it is refused in one line" || bad "mosmigrate: $rc $out"
    kill "$plain" "$nnp" 2>/dev/null; wait "$plain" "$nnp" 2>/dev/null
}
# A client that sends a byte every 2 s and never proves the key must neither block the port
# (once one such client held mosd's only acceptor) nor be kept past the handshake deadline (20 s).
slow_client() { # prints the seconds until mosd closed the connection
    python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); t0 = time.time()
open(sys.argv[2], "w").close()
try:
    while time.time() - t0 < 90:
        s.send(b"x"); s.settimeout(2)
        try:
            if s.recv(1) == b"": break
        except socket.timeout: pass
except OSError: pass
print(round(time.time() - t0))' "$P3" "$T/slow.up"
}
slow_peers() {
    rm -f "$T/slow.up"
    slow_client > "$T/slow.s" & local slow=$!
    for _ in $(seq 100); do [ -e "$T/slow.up" ] && break; sleep 0.1; done
    refused "while a client dribbles its handshake, another node is served" "gid 0 is not a group" \
        "$(exec_req 0 '[]')"
    wait $slow
    local held; held=$(cat "$T/slow.s")
    [ -n "$held" ] && [ "$held" -ge 15 ] && [ "$held" -le 26 ] \
        && ok "the dribbling client was cut at the handshake deadline (after ${held} s)" \
        || bad "dribbling client held ${held:-?} s"
    # one address may have 4 handshakes under way: of 10 silent connections, 6 are closed at once
    local closed; closed=$(python3 -c '
import socket, sys, time
ss = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(10)]
closed = set(); t0 = time.time()
while time.time() - t0 < 5 and len(closed) < 6:
    for i, s in enumerate(ss):
        s.settimeout(0.05)
        try:
            if s.recv(1) == b"": closed.add(i)
        except socket.timeout: pass
        except OSError: closed.add(i)
print(len(closed))' "$P3")
    [ "$closed" = 6 ] && ok "one address gets 4 handshakes at once: 6 of 10 silent connections closed unread" \
        || bad "per-address limit: $closed of 10 closed"
    grep -q "closed .* incoming connection(s) unread, the last from 127.0.0.1" "$T/mosd.log" \
        && ok "mosd logs the refusals (once per 10 s at most)" || bad "no log line: $(tail -3 "$T/mosd.log")"
}
if start_mosd "$T/key.conf"; then
    refused "exec with gid 0 for nobody: refused" "gid 0 is not a group of uid $NOBODY" \
        "$(exec_req 0 '[]')"
    refused "exec with group 0 added for nobody: refused" "group 0 is not a group of uid $NOBODY" \
        "$(exec_req "$NOGROUP" "[$NOGROUP, 0]")"
    # control: nobody's own identity passes the check and fails later, at the link home
    refused "exec with nobody's own groups passes the identity check" "cannot connect back" \
        "$(exec_req "$NOGROUP" "[$NOGROUP]")"
    refused "guest with gid 0 for nobody: refused" "gid 0 is not a group of uid $NOBODY" \
        "$(guest_req "$NOBODY" 0)"
    refused "guest of an unknown uid: refused" "is not a user here" "$(guest_req 3999999 0)"
    out=$("$B/mospeer" "$T/key" "127.0.0.1:$P3" "$(guest_req "$NOBODY" "$NOGROUP")" 2>"$T/mospeer.err")
    grep -q '"ok": *true' <<<"$out" && ok "guest with nobody's own gid is taken" \
        || bad "own gid: $out"
    kill -0 "$MOSD" 2>/dev/null && ok "mosd still serves" || bad "mosd died: $(cat "$T/mosd.log")"
    sandbox_job_stays
    slow_peers
    stop_mosd
fi
finish
