#!/bin/bash
# Multi-threaded processes, checkpointed mid-run (mosckpt dump) and restored (mosckpt
# restore): every output compared byte for byte with an uninterrupted run. zdtm_threads with 2,
# 8 and 64 workers (mutex, condvar, barrier, rwlock; a thread in futex_wait, one in nanosleep,
# one inside a signal handler on its alt stack; per-thread TLS, masks and names; pthread_kill
# and joins after the restore), static too; 20 cycles of one process; zstd -T4 compressing;
# python3 threads; scheduling policy, nice value and affinity per thread; thread stacks' guard
# pages inaccessible again; robust mutexes (plain and PI) held across the restore, tids kept and
# fresh. Needs ptrace over its own children (Yama ptrace_scope <= 1 or root).
set -u
B=$MOS_BIN
CK=$B/mosckpt
T=$(mktemp -d /tmp/mos-threads.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
# fds the test runner may have left open would (rightly) be refused by the dump
for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done
passes=0; fails=0
PY=/usr/bin/python3; [ -x $PY ] || PY=python3 # the real binary, not a wrapper script
ok() { passes=$((passes+1)); echo "ok: $*"; }
bad() { fails=$((fails+1)); echo "FAIL: $*"; }

wait_for() { # wait_for FILE PATTERN: until the file has a line matching it
    for _ in $(seq 1 1000); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.01; done
    return 1
}
threads_of() { awk '/^Threads:/ {print $2}' /proc/$1/status 2>/dev/null; }

# run_pair NAME THREADS CMD...: reference run, then a run dumped mid-way and restored.
run_pair() {
    local name=$1 n=$2; shift 2
    local d=$T/$name; mkdir -p "$d"
    (ZDTM_THREADS=$n "$@" > $d/ref 2>&1; echo "exit $?" >> $d/ref)
    (ZDTM_THREADS=$n exec "$@" > $d/out 2>&1) & local pid=$!
    pids+=($pid)
    if ! wait_for $d/out '^ready'; then bad "$name: never ready"; return; fi
    local seen; seen=$(threads_of $pid)
    if ! "$CK" dump $pid $d/img > $d/dump.log 2>&1; then
        bad "$name: dump failed: $(tail -1 $d/dump.log)"; return
    fi
    wait $pid 2>/dev/null
    (cd / && "$CK" restore $d/img > $d/rout 2> $d/restore.log; echo "exit $?" >> $d/rout)
    cat $d/rout >> $d/out
    if cmp -s $d/ref $d/out && grep -q '^PASS' $d/out && ! grep -q 'fresh tid' $d/restore.log; then
        ok "$name: $seen threads, output identical, pid and tids kept"
    else
        bad "$name: $(diff $d/ref $d/out | head -4 | tr '\n' '|') $(tail -2 $d/restore.log | tr '\n' ' ')"
    fi
}

run_pair threads-2 2 "$B/zdtm_threads_pie"
run_pair threads-8 8 "$B/zdtm_threads_pie"
run_pair threads-64 64 "$B/zdtm_threads_pie"
run_pair threads-8-static 8 "$B/zdtm_threads_static"

# --- per-thread scheduling: policy (SCHED_BATCH), nice and CPU affinity come back, though the
# restorer runs with the defaults
sched_of() { # policy, nice and allowed CPUs of the workers (w0, w1...), one line each
    for t in $(ls /proc/$1/task); do
        c=$(cat /proc/$1/task/$t/comm 2>/dev/null) || continue
        [[ $c == w* ]] || continue
        echo "$c $(awk '{print "policy=" $41 " nice=" $19}' /proc/$1/task/$t/stat) $(grep Cpus_allowed_list /proc/$1/task/$t/status | tr -d '\t')"
    done | sort
}
d=$T/sched; mkdir -p $d
cpu=$(( $(nproc) - 1 ))
(ZDTM_THREADS=3 ZDTM_STEPS=400 exec taskset -c $cpu nice -n 5 chrt -b 0 "$B/zdtm_threads_pie" > $d/out 2>&1) &
pid=$!; pids+=($pid)
wait_for $d/out '^ready'
sched_of $pid > $d/before
if "$CK" dump $pid $d/img > $d/dump.log 2>&1; then
    wait $pid 2>/dev/null
    for _ in $(seq 1 500); do [ -e /proc/$pid ] || break; sleep 0.01; done
    copy=$("$CK" restore $d/img --detach 2> $d/restore.log); pids+=($copy)
    sched_of $copy > $d/after
    cp /proc/$copy/maps $d/maps 2>/dev/null
    for _ in $(seq 1 3000); do kill -0 $copy 2>/dev/null || break; sleep 0.01; done
    if [ "$(wc -l < $d/before)" = 3 ] && grep -q 'policy=3 nice=5' $d/before && cmp -s $d/before $d/after &&
       grep -q '^PASS' $d/out; then
        ok "scheduling kept per thread: $(head -1 $d/after)"
    else bad "scheduling: $(diff $d/before $d/after | tr '\n' '|') $(tail -1 $d/out)"; fi
else bad "scheduling: dump failed: $(tail -1 $d/dump.log)"; fi
# the threads' guard pages are inaccessible again (a restore maps a guard and its stack, and
# the stacks beside it, in one go, and mprotects the guards back)
if "$CK" info $d/img --json > $d/info.json 2>&1 && [ -s $d/maps ] &&
   guards=$($PY - $d/info.json $d/maps <<'PYEOF'
import json, sys
vmas = json.load(open(sys.argv[1]))["vmas"]
maps = {}
for line in open(sys.argv[2]):
    r, perms = line.split()[:2]
    a, b = (int(x, 16) for x in r.split("-"))
    maps[(a, b)] = perms
guards = [(v["start"], v["end"]) for v in vmas
          if v["kind"] == "anon" and v["prot"] == "---" and v["end"] - v["start"] == 4096]
bad = [g for g in guards if maps.get(g) != "---p"]
print(len(guards) if guards and not bad else "wrong: %d guards, %s" % (len(guards), bad[:2]))
PYEOF
) && [ "$guards" -ge 3 ] 2>/dev/null; then
    ok "$guards guard pages of thread stacks inaccessible after the restore, where they were"
else bad "guard pages: ${guards:-no image info or maps}"; fi

# --- 20 dump/restore cycles of one 8-thread process (long enough for 20 cycles when loaded)
d=$T/cycles; mkdir -p $d
env ZDTM_THREADS=8 ZDTM_STEPS=400 ZDTM_STEP_MS=20 "$B/zdtm_threads_pie" > $d/ref 2>&1
echo "exit $?" >> $d/ref
(ZDTM_THREADS=8 ZDTM_STEPS=400 ZDTM_STEP_MS=20 exec "$B/zdtm_threads_pie" > $d/out 2>&1) &
pid=$!; pids+=($pid)
wait_for $d/out '^ready'; n=0; cycle_err=""
for i in $(seq 1 20); do
    sleep 0.05
    if ! "$CK" dump $pid $d/img > $d/log 2>&1; then cycle_err="dump $i: $(tail -1 $d/log)"; break; fi
    [ $i = 1 ] && wait $pid 2>/dev/null
    # a detached copy is init's child: its pid is free (and kept by the next restore) once
    # init has reaped it
    for _ in $(seq 1 500); do [ -e /proc/$pid ] || break; sleep 0.01; done
    if [ $i -lt 20 ]; then
        pid=$("$CK" restore $d/img --detach 2>$d/log) || { cycle_err="restore $i: $(tail -1 $d/log)"; break; }
        pids+=($pid)
    else
        "$CK" restore $d/img 2>$d/log; echo "exit $?" >> $d/out
    fi
    n=$i
done
if [ -z "$cycle_err" ] && cmp -s $d/ref $d/out; then ok "$n dump/restore cycles of one 8-thread process (pid $pid at the end)"
else bad "cycles: $cycle_err $(diff $d/ref $d/out | head -3 | tr '\n' '|')"; fi

# --- a real multi-threaded program: zstd -T4 (a pool of workers, no pipe of its own, unlike
# xz, whose self-pipe is a stay reason) compressing 12 MiB, checkpointed mid-run. Its output
# is a regular file, reopened at its offset by the restore.
d=$T/zstd; mkdir -p $d
$PY -c '
import random, sys
r = random.Random(13)
words = [bytes(r.choice(b"abcdefghijklmnop") for _ in range(r.randint(2, 9))) for _ in range(4000)]
with open(sys.argv[1], "wb") as f:
    for _ in range(12):
        f.write(b" ".join(r.choice(words) for _ in range(190000))[:1 << 20])' $d/in
zstd -q -T4 -19 -c $d/in > $d/ref.zst
(exec zstd -q -T4 -19 -c $d/in > $d/out.zst) & pid=$!; pids+=($pid)
for _ in $(seq 1 500); do [ "$(threads_of $pid)" -ge 4 ] 2>/dev/null && break; sleep 0.01; done
sleep 0.3
seen=$(threads_of $pid)
if "$CK" dump $pid $d/img > $d/dump.log 2>&1; then
    wait $pid 2>/dev/null
    written=$(stat -c %s $d/out.zst)
    (cd / && "$CK" restore $d/img > /dev/null 2> $d/restore.log); rc=$?
    if [ $rc = 0 ] && cmp -s $d/ref.zst $d/out.zst && [ "$written" -lt "$(stat -c %s $d/ref.zst)" ]; then
        ok "zstd -T4 ($seen threads when dumped, $written bytes written by then): output identical"
    else bad "zstd: rc=$rc $(tail -2 $d/restore.log | tr '\n' ' ') $(cmp $d/ref.zst $d/out.zst 2>&1 | head -1)"; fi
else bad "zstd: dump failed: $(tail -1 $d/dump.log)"; fi

# --- python3 threads mid-computation
d=$T/py; mkdir -p $d
cat > $d/p.py <<'EOF'
import hashlib, signal, threading, time
out, lock = {}, threading.Lock()
done, go = threading.Barrier(7), threading.Event()
def work(i):
    h = hashlib.sha256(str(i).encode())
    for k in range(60):
        h.update(h.digest()); time.sleep(0.01)
    with lock:
        out[i] = h.hexdigest()[:16]
    done.wait(); go.wait()
ts = [threading.Thread(target=work, args=(i,)) for i in range(6)]
[t.start() for t in ts]
print("ready", flush=True)
done.wait()
# each thread reached by the tid glibc cached for it (pthread_kill): ESRCH if that is stale
try:
    [signal.pthread_kill(t.ident, 0) for t in ts]
finally:
    go.set()
[t.join() for t in ts]
for i in sorted(out):
    print(i, out[i])
print("PASS", flush=True)
EOF
$PY $d/p.py > $d/ref 2>&1; echo "exit $?" >> $d/ref
(exec $PY $d/p.py > $d/out 2>&1) & pid=$!; pids+=($pid)
wait_for $d/out '^ready'; sleep 0.1
if "$CK" dump $pid $d/img > $d/dump.log 2>&1; then
    wait $pid 2>/dev/null
    (cd / && "$CK" restore $d/img >> $d/out 2> $d/restore.log; echo "exit $?" >> $d/out)
    cmp -s $d/ref $d/out && ok "python3 with 7 threads: output identical" ||
        bad "python3: $(diff $d/ref $d/out | head -3 | tr '\n' '|') $(tail -1 $d/restore.log)"
else bad "python3: dump failed: $(tail -1 $d/dump.log)"; fi

# --- fresh tids: dumped with --leave-running and restored while the original still holds its
# tids; the restore says so, and sets the tids glibc cached to the fresh ones: the python
# program reaches each thread by pthread_kill (without that, ESRCH: its output differs).
# stdout a pipe, so the copy writes to the restorer's stdout, not into the original's file.
d=$T/fresh; mkdir -p $d
(exec $PY $T/py/p.py | cat > $d/orig) &
for _ in $(seq 1 500); do grep -q '^ready' $d/orig 2>/dev/null && break; sleep 0.01; done
pid=$(pgrep -n -f "$T/py/p.py"); pids+=($pid); sleep 0.1
if "$CK" dump $pid $d/img --leave-running > $d/dump.log 2>&1; then
    (cd / && "$CK" restore $d/img > $d/copy 2> $d/restore.log); rc=$?
    wait
    echo "exit $rc" >> $d/copy
    grep -v '^ready' $T/py/ref > $d/want
    if grep -q 'fresh tids' $d/restore.log && cmp -s $d/want $d/copy &&
       cmp -s <(grep -v '^exit' $T/py/ref) $d/orig; then
        ok "tids taken: fresh tids, said once ($(grep -c 'fresh tids' $d/restore.log) warning), both runs right"
    else bad "fresh tids: rc=$rc $(tail -1 $d/restore.log) $(diff $d/want $d/copy | head -3 | tr '\n' '|')"; fi
else bad "fresh tids: dump failed: $(tail -1 $d/dump.log)"; fi
# --- robust mutexes held across the restore, tids kept and fresh: owners that die holding
# them leave them EOWNERDEAD (a plain one and a PI one), and an owner that unlocks one after
# the restore may (the words name owners by tid: with fresh tids they must follow)
run_pair robust 2 "$B/zdtm_robust_pie"
run_pair robust-static 2 "$B/zdtm_robust_static"
d=$T/robust-fresh; mkdir -p $d
(ZDTM_STEPS=40 exec "$B/zdtm_robust_pie" | cat > $d/orig) &
pid=
wait_for $d/orig '^ready' && pid=$(pgrep -n -f "$B/zdtm_robust_pie") && pids+=($pid)
if [ -z "$pid" ]; then bad "robust, fresh tids: never ready"
elif "$CK" dump $pid $d/img --leave-running > $d/dump.log 2>&1; then
    (cd / && "$CK" restore $d/img > $d/copy 2> $d/restore.log); rc=$?
    wait
    if [ $rc = 0 ] && grep -q 'fresh tids' $d/restore.log && grep -q '^PASS' $d/copy &&
       grep -q '^PASS' $d/orig; then
        ok "robust mutexes, fresh tids: $(grep '^held' $d/copy)"
    else bad "robust, fresh tids: rc=$rc $(grep -h -e '^held' -e FAIL $d/copy | tr '\n' ' ') $(tail -1 $d/restore.log)"; fi
else bad "robust, fresh tids: dump failed: $(tail -1 $d/dump.log)"; fi
echo "$passes passed, $fails failed"
[ $fails = 0 ]
