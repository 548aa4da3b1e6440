#!/bin/bash
# mosrun at home with a mosd on a one-node loopback cluster: exit statuses, signals, pipelines,
# registration seen by mosps, and clear errors for bad use.
set -u
B=$MOS_BIN
T=$(mktemp -d /tmp/mos-run.XXXXXX)
passes=0; fails=0
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
cleanup() { [ -n "${MOSD:-}" ] && kill "$MOSD" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
printf '[cluster]\nsocket = %s/mosd-%%n.sock\n[nodes]\nme = 127.0.0.1\n' "$T" > "$T/mos.conf"
export MOS_CONF=$T/mos.conf
"$B/mosd" 2> "$T/mosd.log" & MOSD=$!
for _ in $(seq 50); do [ -S "$T/mosd-me.sock" ] && break; sleep 0.1; done
[ -S "$T/mosd-me.sock" ] && ok "mosd serves its socket" || bad "mosd did not start: $(cat "$T/mosd.log")"

out=$("$B/mosrun" sh -c 'echo hi; exit 7' 2>&1); rc=$?
[ "$rc" = 7 ] && [ "$out" = hi ] && ok "exit status and output pass through" || bad "rc=$rc out=$out"
out=$(printf 'abc\n' | "$B/mosrun" tr a-z A-Z | "$B/mosrun" cat); rc=$?
[ "$out" = ABC ] && ok "works in a pipeline" || bad "pipeline: $out"

"$B/mosrun" -L sleep 30 & job=$!
sleep 0.5
table=$("$B/mosps")
grep -q "sleep 30" <<<"$table" && grep -q "locked (-L)" <<<"$table" && ok "mosps lists the job" \
    || bad "mosps: $table"
json=$("$B/mosps" --json)
python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert j[0]["cmd"]=="sleep 30" and j[0]["where"]=="me" and j[0]["from"]=="me"' "$json" \
    && ok "mosps --json" || bad "mosps --json: $json"
kill -TERM $job; wait $job; rc=$?
[ "$rc" = 143 ] && ok "SIGTERM to mosrun reaches the job; mosrun dies of it" || bad "SIGTERM rc=$rc"
sleep 0.2
[ "$("$B/mosps" --json)" = "[]" ] && ok "a finished job leaves the table" || bad "table: $("$B/mosps")"

"$B/mosrun" sh -c 'kill -SEGV $$' 2>/dev/null; rc=$?
[ "$rc" = 139 ] && ok "a job's death by signal is mosrun's" || bad "SEGV rc=$rc"
out=$("$B/mosrun" /nonexistent/prog 2>&1); rc=$?
[ "$rc" = 127 ] && grep -q "cannot run /nonexistent/prog" <<<"$out" && ok "missing program: 127" \
    || bad "missing program: rc=$rc $out"
out=$("$B/mosrun" -E -R x.ckpt 2>&1); rc=$?
[ "$rc" = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && ok "-E with -R: one line, 2" || bad "-E -R: $rc $out"
out=$("$B/mosrun" -E true 2>&1); rc=$?
[ "$rc" = 1 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "root's programs do not run" <<<"$out" \
    && ok "-E as root: refused in one line, 1" || bad "-E as root: $rc $out"
out=$("$B/mosrun" --frob true 2>&1); rc=$?
[ "$rc" = 2 ] && grep -q "unknown option" <<<"$out" && ok "bad option" || bad "bad option: $rc $out"
for m in 512 2G 1536K; do
    out=$("$B/mosrun" -b -m "$m" sh -c 'exit 3' 2>&1); rc=$?
    [ "$rc" = 3 ] && [ -z "$out" ] && ok "-b -m $m: taken, the job runs on the best node (here)" \
        || bad "-b -m $m: $rc $out"
done
for m in 2X -1 1.5G 2P; do
    out=$("$B/mosrun" -m "$m" true 2>&1); rc=$?
    [ "$rc" = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "-m '$m' is not a size" <<<"$out" \
        && ok "-m $m: one line naming -m, 2" || bad "-m $m: $rc $out"
done
out=$("$B/mosrun" -m 2048T true 2>&1); rc=$?
[ "$rc" = 2 ] && grep -q -- "-m '2048T' is above 1024T" <<<"$out" && ok "-m above 1 PiB refused" || bad "-m 2048T: $rc $out"

# only a process's parent may register it
python3 - "$T/mosd-me.sock" <<'PY' && ok "registering someone else's process is refused" || bad "spoofed registration accepted"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(json.dumps({"op": "register", "pid": 1, "cmd": "init"}).encode() + b"\n")
r = json.loads(s.makefile().readline())
sys.exit(0 if (not r["ok"] and "not a child" in r["error"]) else 1)
PY
python3 - "$T/mosd-me.sock" <<'PY' && ok "garbage on the socket gets an error reply" || bad "garbage"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"this is not json\n{\"op\": \"nope\"}\n")
f = s.makefile()
a, b = json.loads(f.readline()), json.loads(f.readline())
sys.exit(0 if (not a["ok"] and not b["ok"] and "unknown op" in b["error"]) else 1)
PY

# checkpoint while it runs (mosrun -C, mosmigrate PID checkpoint), then restart it (mosrun -R)
( "$B/mosrun" -C "$T/job.ckpt" "$B/mosjob" 40 25 "$T/c.a" "$T/c.b" < /dev/null | cat > "$T/c.out" ) &
cjob=$!
sleep 0.6
out=$("$B/mosmigrate" "$(pgrep -f "^$B/mosjob 40 25 $T/c.a" | head -1)" checkpoint 2>&1)
wait $cjob
grep -q "checkpoint written to $T/job.ckpt" <<<"$out" && [ -s "$T/job.ckpt" ] && grep -q "^step 40 " "$T/c.out" \
    && ok "mosmigrate PID checkpoint writes the -C file while the job goes on" || bad "checkpoint: $out"
"$B/mosrun" -R "$T/job.ckpt" < /dev/null | cat > "$T/r.out"; rc=${PIPESTATUS[0]}
"$B/mosjob" 40 0 "$T/ref.a" "$T/ref.b" < /dev/null > /dev/null
first=$(head -1 "$T/r.out" | awk '{print $2}')
[ "$rc" = 7 ] && grep -q "^step 40 " "$T/r.out" && [ "${first:-0}" -gt 1 ] && cmp -s "$T/c.a" "$T/ref.a" \
    && ok "mosrun -R restarts it from the checkpoint (from step $first)" || bad "restart: rc=$rc first=$first $(tail -2 "$T/r.out")"
out=$("$B/mosmigrate" 1 checkpoint 2>&1); rc=$?
[ $rc = 1 ] && grep -q "is not a mos job" <<<"$out" && ok "checkpoint of a stranger refused" || bad "checkpoint stranger: $rc $out"
out=$("$B/mosrun" -R "$T/none.ckpt" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "cannot open checkpoint" <<<"$out" && ok "a missing checkpoint: one line" || bad "-R missing: $rc $out"

kill $MOSD; wait $MOSD; MOSD=
out=$("$B/mosrun" true 2>&1); rc=$?
[ "$rc" = 0 ] && grep -q "no mosd on this node" <<<"$out" && ok "without mosd the job runs unmanaged" \
    || bad "no mosd: $rc $out"
out=$("$B/mosps" 2>&1); rc=$?
[ "$rc" = 1 ] && [ "$(wc -l <<<"$out")" = 1 ] && ok "mosps without mosd: one line, 1" || bad "mosps: $rc $out"
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
