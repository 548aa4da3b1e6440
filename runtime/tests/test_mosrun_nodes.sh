#!/bin/bash
# mosrun -N: the nodes a job may run on. Checked by mosd before any other node is asked, so a
# cluster whose other nodes run no mosd is enough: -N's syntax, -r and mosmigrate outside the
# list refused with the reason, mosps showing the list. Moves within the list: test_slurm_lab.
set -u
B=$MOS_BIN
T=$(mktemp -d /tmp/mos-nodes.XXXXXX)
passes=0; fails=0
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
cleanup() { [ -n "${MOSD:-}" ] && kill "$MOSD" 2>/dev/null; [ -n "${JOB:-}" ] && kill "$JOB" 2>/dev/null
            wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
read -r P1 P2 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
printf '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n' > "$T/key"
chmod 600 "$T/key"
# near and far (TEST-NET addresses) run no mosd: nothing here may need them
printf '[cluster]\nkey_file = %s\nsocket = %s/mosd-%%n.sock\ntransport = tcp\ntransport_port = %s\ngossip_port = %s\nbalance = 0\n[nodes]\nme = 127.0.0.1\nnear = 192.0.2.2\nfar = 192.0.2.3\n' \
    "$T/key" "$T" "$P1" "$P2" > "$T/mos.conf"
export MOS_CONF=$T/mos.conf
"$B/mosd" 2> "$T/mosd.log" & MOSD=$!
for _ in $(seq 100); do [ -S "$T/mosd-me.sock" ] && break; sleep 0.1; done
[ -S "$T/mosd-me.sock" ] && ok "mosd serves its socket" || { bad "mosd did not start: $(cat "$T/mosd.log")"; exit 1; }

for arg in "" "a,,b" "bad name" ",x" "x," "$(printf 'n%.0s' $(seq 64))" \
           "$(seq -s, 1 129 | sed 's/[0-9]*/n&/g')"; do
    out=$("$B/mosrun" -N "$arg" true 2>&1); rc=$?
    [ "$rc" = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "-N '" <<<"$out" \
        && ok "-N '${arg:0:20}': refused in one line, 2" || bad "-N '$arg': $rc $out"
done
out=$("$B/mosrun" -N "$(seq -s, 1 128 | sed 's/[0-9]*/n&/g')" sh -c 'exit 4' 2>&1); rc=$?
[ "$rc" = 4 ] && [ -z "$out" ] && ok "-N with 128 names (unknown to the cluster) is taken" \
    || bad "-N 128 names: $rc $out"
out=$("$B/mosrun" -E -N near true 2>&1); rc=$?
[ "$rc" = 2 ] && grep -q -- "-N restricts migrations" <<<"$out" && ok "-E with -N refused" || bad "-E -N: $rc $out"

out=$("$B/mosrun" -N me,near -r far sh -c 'exit 5' 2>&1); rc=$?
[ "$rc" = 5 ] && grep -q "cannot start on far: far is not one of the job's nodes (-N me,near)" <<<"$out" \
    && ok "-r outside -N: said, and the job runs here" || bad "-r far: $rc $out"
out=$("$B/mosrun" -N near,far -b sh -c 'exit 6' 2>&1); rc=$?
[ "$rc" = 6 ] && ok "-b with -N: runs (mosd chose within the list or here)" || bad "-b: $rc $out"

"$B/mosrun" -N near,nowhere sleep 60 & JOB=$!
for _ in $(seq 100); do pid=$(pgrep -P $JOB sleep) && break; sleep 0.1; done
json=$("$B/mosps" --json)
python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert j[0]["nodes"]==["near"], j' "$json" \
    && ok "mosps --json shows the job's nodes (unknown names dropped)" || bad "mosps: $json"
out=$("$B/mosmigrate" "$pid" far 2>&1); rc=$?
[ "$rc" = 1 ] && [ "$(wc -l <<<"$out")" = 1 ] \
    && grep -q "may run only on its nodes (mosrun -N near) and home: far is not one of them" <<<"$out" \
    && ok "mosmigrate outside -N: refused, one line with the reason" || bad "mosmigrate far: $rc $out"
kill $JOB; wait $JOB 2>/dev/null; JOB=

echo "passed $passes, failed $fails"
[ "$fails" = 0 ]
