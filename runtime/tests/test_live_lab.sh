#!/bin/bash
# Live migration between lab nodes (issue 17): a user's job that keeps writing its memory
# (zdtm_dirty: page writes, MADV_DONTNEED, regions swapped by mremap) is moved from home to
# node 2 with mosmigrate --live while it runs, and prints exactly what a native run prints;
# node 1's mosd says it went live (rounds, pages kept); mosps shows the move under way.
# live_mode = pre with live_min_mib: a big job goes live without asking, a small one does not.
# Bad requests: --live=post and a "live" that is not a boolean are refused in one line.
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init live

lab_up 2 --set balance=0 --set live_mode=pre --set live_min_mib=48
declare -A MOSD
for i in 1 2; do "$LAB" exec --uncapped "$i" "$B/mosd" >> "$W/mosd$i.log" 2>&1 & MOSD[$i]=$!; done
wait_mosd 1 2
job_registered() { local j; j=$(pgrep -P "$1" -x "$2" | head -1); [ -n "$j" ] && registered "$j"; }
started() { wait_until 20 job_registered "$1" "$2"; pgrep -P "$1" -x "$2" | head -1; }
said_ready() { grep -q '^ready' "$1" 2>/dev/null; }
prog=zdtm_dirty_pie
export ZDTM_MIB=160 ZDTM_STEPS=150 ZDTM_WRITES=96 ZDTM_STEP_MS=20

# the reference: natively, as the same user
(cd "$W" && exec "${AS_USER[@]}" env ZDTM_MIB=$ZDTM_MIB "$B/$prog" > "$W/ref.out" 2>&1)
echo "exit $?" >> "$W/ref.out"
grep -q '^PASS' "$W/ref.out" || bad "the reference run itself failed: $(tail -2 "$W/ref.out" | tr '\n' ' ')"

# 1. mosmigrate --live: home -> node 2 while it writes
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/$prog" > "$W/live.out" 2> "$W/live.err") &
run=$!
job=$(started $run $prog)
wait_until 20 said_ready "$W/live.out"
on 1 "${AS_USER[@]}" "$B/mosmigrate" --live "$job" "$N2" > "$W/mig.log" 2>&1 &
mig=$!
moving_live() { on 1 "$B/mosps" | grep -qE " $job +[^ ]+ +${N1}>${N2} .*moving \(live\)"; }
wait_until 30 moving_live && ok "mosps shows the move under way: ${N1}>${N2}, moving (live)" \
    || bad "mosps during the move: $(on 1 "$B/mosps" | tail -1)"
wait $mig
grep -q "now runs on $N2" "$W/mig.log" && ok "mosmigrate --live moves the job to node 2" \
    || bad "mosmigrate --live: $(cat "$W/mig.log")"
# the kernel tracks writes for a live move from 6.7 on (userfaultfd write-protect, async);
# before, the move is a stop-and-copy and says why
if ! printf '%s\n6.7\n' "$(uname -r | cut -d- -f1)" | sort -V -C -r 2>/dev/null; then
    grep -q "no live pre-copy" "$W/mosd1.log" && ok "kernel $(uname -r) is older than 6.7: stop-and-copy, said in the log" \
        || bad "kernel $(uname -r): no fallback line"
fi
line=$(grep "pid $job moved live" "$W/mosd1.log" | tail -1)
kept=$(sed -n 's/.* \([0-9]*\) kept.*/\1/p' <<<"$line")
[ -n "$line" ] && [ "${kept:-0}" -gt 0 ] && ok "node 1 moved it live: ${line#*moved live: }" \
    || bad "no live move in node 1's log: $(grep -E "pid $job|live" "$W/mosd1.log" | tail -3 | tr '\n' '|')"
wait $run; echo "exit $?" >> "$W/live.out"
cmp -s "$W/ref.out" "$W/live.out" && ok "moved live while writing: output identical to the native run ($(grep -c . "$W/live.out") lines, $(grep 'pages wrong' "$W/live.out"))" \
    || bad "live move: outputs differ: $(diff "$W/ref.out" "$W/live.out" | head -4 | tr '\n' '|') $(tail -2 "$W/live.err" | tr '\n' ' ')"

# 2. live_mode = pre: no --live asked; 160 MiB >= live_min_mib goes live, a small job does not
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/$prog" > "$W/cfg.out" 2> "$W/cfg.err") &
run=$!
job=$(started $run $prog)
wait_until 20 said_ready "$W/cfg.out"
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$job" "$N2" 2>&1)
grep -q "now runs on $N2" <<<"$out" && grep -q "pid $job moved live" "$W/mosd1.log" \
    && ok "live_mode = pre: a job over live_min_mib moves live unasked" \
    || bad "live_mode: $out; $(grep "pid $job" "$W/mosd1.log" | tail -2 | tr '\n' '|')"
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" env ZDTM_MIB=4 "$B/mosrun" "$B/$prog" > "$W/small.out" 2>&1) &
small_run=$!
small=$(started $small_run $prog)
wait_until 20 said_ready "$W/small.out"
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$small" "$N2" 2>&1)
grep -q "now runs on $N2" <<<"$out" && ! grep -q "pid $small moved live" "$W/mosd1.log" \
    && ok "live_mode = pre: a job under live_min_mib moves by stop-and-copy" \
    || bad "small job: $out; $(grep "pid $small" "$W/mosd1.log" | tail -2 | tr '\n' '|')"
wait $run; echo "exit $?" >> "$W/cfg.out"; wait $small_run
cmp -s "$W/ref.out" "$W/cfg.out" && grep -q '^PASS' "$W/small.out" \
    && ok "both finish right" || bad "after the config moves: $(tail -2 "$W/cfg.out" | tr '\n' ' ') / $(tail -1 "$W/small.out")"

# 3. bad requests: one line, non-zero, nothing moves
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" --live=post 1 "$N2" 2>&1); rc=$?
[ $rc != 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "post-copy is not implemented" <<<"$out" \
    && ok "--live=post: refused in one line ($out)" || bad "--live=post: rc=$rc $out"
sock=/run/mos-lab/$MOS_LAB_NAME/mosd-${N1}.sock
on 1 python3 - "$sock" <<'PY' && ok "a \"live\" that is not a boolean: malformed request" || bad "live: \"yes\" was not refused"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(json.dumps({"op": "migrate", "pid": 1, "to": "x", "live": "yes"}).encode() + b"\n")
r = json.loads(s.makefile().readline())
sys.exit(0 if (not r["ok"] and "malformed request: live" in r["error"]) else 1)
PY
lab_result
