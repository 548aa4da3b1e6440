#!/bin/bash
# Selection and fallback where verbs cannot run (this host: no RDMA device; elsewhere the test
# makes verbs impossible with a tiny `ulimit -l` for an unprivileged user). auto must fall back
# to tcp with one log line giving the reason on each side; a forced verbs must fail with a
# clear error on both sides; MOS_TRANSPORT=tcp must not log any fallback.
set -u
. "$(dirname "$0")/lib_check.sh"
T=$(mktemp -d); SRV_PID=
trap 'kill $SRV_PID 2>/dev/null; rm -rf "$T"' EXIT
make_key "$T/k"
chmod 755 "$T"; chmod 644 "$T/k"  # readable by the unprivileged user below

ndev=$(ls /sys/class/infiniband 2>/dev/null | wc -l)
if [ "$ndev" = 0 ]; then
    echo "this host has no RDMA device: the reason must be 'no RDMA device'"
    RUN=(); REASON="no RDMA device"
else
    # With a device, take verbs away with RLIMIT_MEMLOCK: as root CAP_IPC_LOCK would lift it,
    # so run as nobody. (Keys are then readable by others: mos_key_load refuses that, so the
    # key is passed through a private copy.)
    echo "this host has $ndev RDMA device(s): making verbs impossible with ulimit -l 64"
    RUN=(setpriv --reuid=65534 --regid=65534 --clear-groups bash -c 'ulimit -l 64; exec "$@"' x)
    REASON="ulimit -l is 64 KiB"
fi
KEYARG=(--key "$T/k")
if [ "$ndev" != 0 ]; then
    cp "$T/k" "$T/k.nobody"; chown 65534 "$T/k.nobody"; chmod 600 "$T/k.nobody"; KEYARG=(--key "$T/k.nobody")
else
    chmod 600 "$T/k"
fi

# auto on both ends: tcp, one reason line each.
start_server "$T/srv" env MOS_TRANSPORT=auto "${RUN[@]}" -- 127.0.0.1:0 "${KEYARG[@]}"
out=$(MOS_TRANSPORT=auto "${RUN[@]}" "$CHK" client 127.0.0.1:$SRV_PORT "${KEYARG[@]}" --mib 2 --echo 5 2>&1); rc=$?
wait_server "auto"
if [ $rc = 0 ] && grep -q "with tcp" <<<"$out" && [ "$(grep -c 'using tcp:' <<<"$out")" = 1 ] &&
   grep -q "using tcp: $REASON" <<<"$out"; then ok "client: auto falls back to tcp: $(grep -o 'using tcp:.*' <<<"$out")"
else bad "client auto fallback: rc=$rc $out"; fi
if [ "$(count 'using tcp:' "$T/srv")" = 1 ] && grep -q "using tcp: $REASON" "$T/srv"; then
    ok "server: one line with the reason: $(grep -o 'using tcp:.*' "$T/srv")"
else bad "server fallback line: $(cat "$T/srv")"; fi

# Forced verbs on the client: refused, both sides say why.
start_server "$T/srv" env MOS_TRANSPORT=auto "${RUN[@]}" -- 127.0.0.1:0 "${KEYARG[@]}" --expect-fail 1
out=$(MOS_TRANSPORT=verbs "${RUN[@]}" "$CHK" client 127.0.0.1:$SRV_PORT "${KEYARG[@]}" 2>&1); rc=$?
wait_server "forced verbs"
if [ $rc != 0 ] && grep -q "verbs required but not possible" <<<"$out" && grep -q "$REASON" <<<"$out"; then
    ok "client: MOS_TRANSPORT=verbs refused: $(grep -o 'verbs required.*' <<<"$out")"
else bad "client forced verbs: rc=$rc $out"; fi
grep -q "verbs required but not possible" "$T/srv" && ok "server: says why it refused" \
    || bad "server forced verbs: $(cat "$T/srv")"

# Forced tcp: no fallback line anywhere.
start_server "$T/srv" env MOS_TRANSPORT=tcp "${RUN[@]}" -- 127.0.0.1:0 "${KEYARG[@]}"
out=$(MOS_TRANSPORT=tcp "${RUN[@]}" "$CHK" client 127.0.0.1:$SRV_PORT "${KEYARG[@]}" --mib 1 --echo 5 2>&1); rc=$?
wait_server "forced tcp"
if [ $rc = 0 ] && grep -q "with tcp" <<<"$out" && ! grep -q "using tcp" <<<"$out" &&
   ! grep -q "using tcp" "$T/srv"; then
    ok "MOS_TRANSPORT=tcp on both ends: tcp, no fallback logged"
else bad "forced tcp: rc=$rc $out"; fi
finish
