#!/bin/bash
# The transport between two lab nodes (network namespaces, CPU-capped): the key comes from the
# lab's cluster config (MOS_CONF), the backend from its `transport` setting (auto: tcp on this
# host, which has no RDMA device). A server on node 1, clients on node 2: pages from a buffer
# and from another process, placed into a buffer and into another process, every page
# checksummed; a client with the wrong key; a client that vanishes mid-run; the server
# vanishing mid-run.
set -u
. "$(dirname "$0")/lib_check.sh"
LAB=${MOS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lab/mos-lab
export MOS_LAB_NAME=tpl$$
T=$(mktemp -d)
SRV_PID=
trap 'kill $SRV_PID 2>/dev/null; "$LAB" down >/dev/null 2>&1; rm -rf "$T"' EXIT
make_key "$T/wrong"

"$LAB" up 2 --cpus 1 > "$T/up" 2>&1 && ok "lab up: 2 nodes" || { bad "lab up: $(cat "$T/up")"; finish; exit 1; }
A=$("$LAB" addr 1)
node1() { "$LAB" exec 1 "$@"; }
node2() { "$LAB" exec 2 "$@"; }

good() { # NAME SERVER-ARGS -- CLIENT-ARGS
    local name=$1; shift
    local sargs=()
    while [ "$1" != "--" ]; do sargs+=("$1"); shift; done; shift
    start_server "$T/srv" "$LAB" exec 1 -- "$A:0" "${sargs[@]}" || { bad "$name"; return; }
    out=$(node2 "$CHK" client "$A:$SRV_PORT" "$@" 2>&1); rc=$?
    wait_server "$name" || return
    if [ $rc = 0 ] && grep -q "every checksum matches" <<<"$out" && grep -q "^session 1 ok" "$T/srv"; then
        ok "$name: $(grep -o 'connected .*' <<<"$out" | head -1); $(grep -o 'bulk sent [0-9]* pages.*' <<<"$out")"
    else bad "$name: rc=$rc $out $(cat "$T/srv")"; fi
}
good "node 2 -> node 1, buffer to buffer, 32 MiB" -- --mib 32
good "node 2 -> node 1, process to process, 16 MiB" --into-process -- --mib 16 --from-process
good "node 2 -> node 1, 64 KiB frames" --slot 65536 -- --mib 8 --slot 65536 --echo 50

start_server "$T/srv" "$LAB" exec 1 -- "$A:0" --expect-fail 1
out=$(node2 "$CHK" client "$A:$SRV_PORT" --key "$T/wrong" 2>&1); rc=$?
wait_server "wrong key" && {
    if [ $rc != 0 ] && grep -q "hold different keys" <<<"$out" && [ "$(count 'error:' "$T/srv")" = 1 ] &&
       grep -q "refused our cluster-key proof" "$T/srv"; then ok "a node with another key is refused, both sides say why"
    else bad "wrong key: rc=$rc client: $out server: $(cat "$T/srv")"; fi
}

start_server "$T/srv" "$LAB" exec 1 -- "$A:0" --expect-fail 1
node2 "$CHK" raw "$A:$SRV_PORT" vanish > "$T/raw" 2>&1
wait_server "client vanishing" && {
    [ "$(count 'error:' "$T/srv")" = 1 ] && grep -q "peer went away" "$T/srv" &&
        ok "client vanishing mid-run: one error on the server" || bad "client vanishing: $(cat "$T/srv")"
}

start_server "$T/srv" "$LAB" exec 1 -- "$A:0"
node2 "$CHK" client "$A:$SRV_PORT" --mib 256 --echo 0 > "$T/cli" 2>&1 &
cli=$!
for i in $(seq 300); do grep -q "^server: receiving" "$T/srv" && break; sleep 0.05; done
sleep 0.05; kill -KILL $SRV_PID; wait $SRV_PID 2>/dev/null
wait $cli; rc=$?
if [ $rc = 1 ] && grep -q "FAIL: bulk send" "$T/cli"; then ok "server vanishing mid-run: client fails cleanly"
else bad "server vanishing mid-run: rc=$rc $(cat "$T/cli")"; fi
finish
