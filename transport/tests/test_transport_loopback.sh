#!/bin/bash
# The transport end to end on loopback (tcp; verbs where a device exists is the rdma tests'
# job): control round trips, page runs from this process and from another process into a
# buffer and into another process, every page checksummed; then bad peers: a wrong key,
# garbage after the handshake, a truncated page-run frame, a client vanishing mid-run, a
# page-run frame or a control message changed on the way, a control message replayed, a
# server vanishing mid-run. Each bad session must cost one logged error and nothing else.
set -u
. "$(dirname "$0")/lib_check.sh"
T=$(mktemp -d); trap 'kill $SRV_PID 2>/dev/null; rm -rf "$T"' EXIT
SRV_PID=
make_key "$T/k1"; make_key "$T/k2"
export MOS_TRANSPORT=auto

client_ok() { # NAME SERVER-ARGS -- CLIENT-ARGS
    local name=$1; shift
    local sargs=() cargs
    while [ "$1" != "--" ]; do sargs+=("$1"); shift; done; shift
    start_server "$T/srv" -- 127.0.0.1:0 --key "$T/k1" "${sargs[@]}" || { bad "$name"; return; }
    out=$("$CHK" client 127.0.0.1:$SRV_PORT --key "$T/k1" "$@" 2>&1); rc=$?
    wait_server "$name" || return
    if [ $rc = 0 ] && grep -q "every checksum matches" <<<"$out" && grep -q "^session 1 ok" "$T/srv"; then
        ok "$name ($(grep -o 'bulk sent [0-9]* pages in [0-9]* runs' <<<"$out"))"
    else bad "$name: rc=$rc $out $(cat "$T/srv")"; fi
}
client_ok "buffer to buffer, 16 MiB" -- --mib 16
client_ok "process to process (process_vm_readv/writev)" --into-process -- --mib 16 --from-process
client_ok "small 64 KiB frames, many of them" -- --mib 8 --slot 64K --echo 20
client_ok "64 MiB slots (larger than the whole transfer)" --slot 67108864 -- --mib 4 --slot 67108864 --echo 20

# IPv6 endpoints ([addr]:port), where the host has ::1.
if ip -6 addr show dev lo 2>/dev/null | grep -q '::1'; then
    start_server "$T/srv" -- '[::1]:0' --key "$T/k1"
    out=$("$CHK" client "[::1]:$SRV_PORT" --key "$T/k1" --mib 2 --echo 10 2>&1); rc=$?
    wait_server "ipv6" && { [ $rc = 0 ] && grep -q "every checksum matches" <<<"$out" &&
        ok "IPv6 endpoint [::1]" || bad "ipv6: rc=$rc $out"; }
else
    echo "no ::1 on lo here: the IPv6 endpoint case is not run"
fi

# Wrong key: both sides say so, in one line each.
start_server "$T/srv" -- 127.0.0.1:0 --key "$T/k1" --expect-fail 1
out=$("$CHK" client 127.0.0.1:$SRV_PORT --key "$T/k2" 2>&1); rc=$?
wait_server "wrong key" && {
    if [ $rc != 0 ] && grep -q "hold different keys" <<<"$out" && [ "$(count 'error:' "$T/srv")" = 1 ] &&
       grep -q "refused our cluster-key proof: the two nodes hold different keys" "$T/srv"; then
        ok "wrong key refused on both sides"
    else bad "wrong key: rc=$rc client: $out server: $(cat "$T/srv")"; fi
}

# Bad peers after a correct handshake; the server must log exactly one error for the session.
bad_peer() { # NAME KIND PATTERN
    start_server "$T/srv" -- 127.0.0.1:0 --key "$T/k1" --expect-fail 1
    "$CHK" raw 127.0.0.1:$SRV_PORT "$2" --key "$T/k1" > "$T/raw" 2>&1
    wait_server "$1" || return
    if [ "$(count 'error:' "$T/srv")" = 1 ] && grep -q -- "$3" "$T/srv"; then ok "$1: $(grep 'error:' "$T/srv" | sed 's/.*error: //')"
    else bad "$1: $(cat "$T/srv")"; fi
}
bad_peer "garbage after the handshake" garbage "malformed message; closing the connection"
bad_peer "truncated page-run frame" truncate "truncated stream"
bad_peer "client vanishing mid-run" vanish "peer went away"
# Every message after the handshake is protected with the session's keys (mos/seal.h): a bit
# changed on the way, or a message sent twice, is refused, never delivered.
bad_peer "page-run frame changed on the way" forge-frame "page-run frame: message failed its session check"
bad_peer "control message changed on the way" forge-control "control receive: message failed its session check"
bad_peer "control message replayed" replay-control "control receive: message failed its session check"

# The server vanishes while the client sends 256 MiB: the client fails cleanly.
start_server "$T/srv" -- 127.0.0.1:0 --key "$T/k1"
"$CHK" client 127.0.0.1:$SRV_PORT --key "$T/k1" --mib 256 --echo 0 > "$T/cli" 2>&1 &
cli=$!
for i in $(seq 200); do grep -q "^server: receiving" "$T/srv" && break; sleep 0.05; done
sleep 0.05; kill -KILL $SRV_PID; wait $SRV_PID 2>/dev/null
wait $cli; rc=$?
if [ $rc = 1 ] && grep -q "FAIL: bulk send" "$T/cli" && [ "$(count 'error:' "$T/cli")" = 1 ]; then
    ok "server vanishing mid-run: client exits 1 ($(grep -m1 'error:\|FAIL' "$T/cli"))"
else bad "server vanishing mid-run: rc=$rc $(cat "$T/cli")"; fi

# Bad endpoints and options are one-line errors.
out=$("$CHK" client nonsense --key "$T/k1" 2>&1); rc=$?
[ $rc != 0 ] && grep -q "bad endpoint 'nonsense': expected host:port" <<<"$out" && ok "bad endpoint refused" \
    || bad "bad endpoint: rc=$rc $out"
out=$("$CHK" client 127.0.0.1:1 --key "$T/k1" 2>&1); rc=$?
[ $rc != 0 ] && grep -q "connect to 127.0.0.1:1: Connection refused" <<<"$out" && ok "nobody listening: clear error" \
    || bad "nobody listening: rc=$rc $out"
out=$("$CHK" client 127.0.0.1:1 --key "$T/k1" --slot 1000 2>&1); rc=$?
[ $rc != 0 ] && grep -q "bad transport options" <<<"$out" && ok "bad slot size refused" || bad "bad slot: rc=$rc $out"
out=$("$CHK" client 127.0.0.1:1 --key "$T/k1" --mib 2X 2>&1); rc=$?
[ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "--mib '2X' is not a size" <<<"$out" \
    && ok "a bad size: one line naming the option, status 2" || bad "bad size: rc=$rc $out"
finish
