#!/bin/bash
# Direct migration between two lab nodes: a process started on node 1 is sent with
# `mosckpt send` to `mosckpt receive` on node 2, finishes there with output identical to an
# uninterrupted run, and lives in node 2's network namespace. A receiver killed mid-stream
# leaves the original running on node 1. Both ends take the cluster key from the lab's config
# (MOS_CONF); the receiver binds node 2's address. A multi-threaded python3 goes node 1 ->
# node 2 -> node 1.
set -u
LAB=$MOS_SRC/tests/lab/mos-lab
CK=$MOS_BIN/mosckpt
export MOS_LAB_NAME=mig$$
T=$(mktemp -d /tmp/mos-miglab.XXXXXX)
passes=0; fails=0
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
trap '"$LAB" down >/dev/null 2>&1; rm -rf "$T"' EXIT
for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done
wait_ready() { for _ in $(seq 1 500); do grep -q '^ready' "$1" 2>/dev/null && return 0; sleep 0.01; done; return 1; }

"$LAB" up 2 --cpus 1 >/dev/null 2>&1 && ok "lab up (2 nodes)" || { bad "lab up"; echo "0 passed, 1 failed"; exit 1; }
node2=$("$LAB" addr 2)

for prog in signals heap fpu; do
    ZDTM_STEPS=30 "$MOS_BIN/zdtm_${prog}_pie" > $T/$prog.ref 2>&1; echo "exit $?" >> $T/$prog.ref
    port=$((7000 + RANDOM % 1000))
    ZDTM_STEPS=30 "$LAB" exec 1 "$MOS_BIN/zdtm_${prog}_pie" > $T/$prog.out 2>&1 & src=$!
    wait_ready $T/$prog.out
    "$LAB" exec 2 "$CK" receive --listen $node2:$port > $T/recv.log 2>&1 & recv=$!
    sleep 0.3
    "$LAB" exec 1 "$CK" send $src $node2:$port > $T/send.log 2>&1; rc=$?
    wait $src 2>/dev/null
    # the copy runs under the receiver on node 2
    copy=$(pgrep -P $recv | head -1)
    if [ -n "$copy" ] && [ "$(readlink /proc/$copy/ns/net)" = "$(readlink /proc/$recv/ns/net)" ]; then
        innode2=1; else innode2=0; fi
    wait $recv; echo "exit $?" >> $T/$prog.out
    if [ $rc = 0 ] && cmp -s $T/$prog.ref $T/$prog.out; then
        ok "$prog: node 1 -> node 2, output identical ($(cat $T/send.log | cut -c1-60)), in node 2's netns: $innode2"
    else
        bad "$prog: send rc=$rc $(tail -1 $T/send.log) $(tail -1 $T/recv.log) $(diff $T/$prog.ref $T/$prog.out | head -3 | tr '\n' '|')"
    fi
    [ "$prog" = signals ] && { [ $innode2 = 1 ] && ok "restored process is in node 2's network namespace" || bad "restored process not found in node 2"; }
done

# an interpreter mid-computation, node 1 -> node 2
PY=/usr/bin/python3; [ -x $PY ] || PY=python3
prog='import time
acc = 1
print("ready", flush=True)
for i in range(40):
    acc = (acc * 7 + i) % 1000000007
    print(i, acc, sum(k * k for k in range(3000)), flush=True)
    time.sleep(0.02)
print("PASS")'
$PY -c "$prog" > $T/py.ref 2>&1; echo "exit $?" >> $T/py.ref
port=$((9000 + RANDOM % 1000))
"$LAB" exec 1 $PY -c "$prog" > $T/py.out 2>&1 & src=$!
wait_ready $T/py.out
"$LAB" exec 2 "$CK" receive --listen $node2:$port > $T/recv.log 2>&1 & recv=$!
sleep 0.3
"$LAB" exec 1 "$CK" send $src $node2:$port > $T/send.log 2>&1; rc=$?
wait $src 2>/dev/null
wait $recv; echo "exit $?" >> $T/py.out
[ $rc = 0 ] && cmp -s $T/py.ref $T/py.out && ok "python3 mid-computation: node 1 -> node 2, output identical ($(cut -c1-50 $T/send.log))" \
    || bad "python3 lab: rc=$rc $(tail -1 $T/send.log) $(diff $T/py.ref $T/py.out | head -3 | tr '\n' '|')"

# a multi-threaded process natively node 1 -> node 2 -> home (node 1). The lab's nodes share
# one pid namespace and the original holds its tids until the commit, so the copies get fresh
# tids (migrate/README.md "Threads"): python3's threads aim no signal at a thread.
tprog='import threading, time, hashlib
out, lock = {}, threading.Lock()
def work(i):
    h = hashlib.sha256(str(i).encode())
    for k in range(100):
        h.update(h.digest()); time.sleep(0.02)
    with lock:
        out[i] = h.hexdigest()[:16]
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
[t.start() for t in ts]
print("ready", flush=True)
[t.join() for t in ts]
for i in sorted(out):
    print(i, out[i], flush=True)
print("PASS", flush=True)'
$PY -c "$tprog" > $T/thr.ref 2>&1; echo "exit $?" >> $T/thr.ref
node1=$("$LAB" addr 1)
"$LAB" exec 1 $PY -c "$tprog" > $T/thr.out 2>&1 & src=$!
wait_ready $T/thr.out
threads_of() { awk '/^Threads:/ {print $2}' /proc/$1/status 2>/dev/null; }
t1=$(threads_of $src)
port=$((10000 + RANDOM % 1000))
"$LAB" exec 2 "$CK" receive --listen $node2:$port > $T/recv2.log 2>&1 & recv2=$!
sleep 0.3
"$LAB" exec 1 "$CK" send $src $node2:$port > $T/send1.log 2>&1; rc1=$?
wait $src 2>/dev/null
copy=$(pgrep -P $recv2 | head -1); t2=$(threads_of "$copy")
port=$((11000 + RANDOM % 1000))
"$LAB" exec 1 "$CK" receive --listen $node1:$port > $T/recv1.log 2>&1 & recv1=$!
sleep 0.3
rc2=1; [ -n "$copy" ] && { "$LAB" exec 2 "$CK" send $copy $node1:$port > $T/send2.log 2>&1; rc2=$?; }
wait $recv2 2>/dev/null
wait $recv1; echo "exit $?" >> $T/thr.out
if [ $rc1 = 0 ] && [ $rc2 = 0 ] && [ "$t1" -ge 5 ] && [ "${t2:-0}" = "$t1" ] && cmp -s $T/thr.ref $T/thr.out; then
    ok "python3 with $t1 threads: node 1 -> node 2 -> node 1 natively, output identical ($t2 threads on node 2)"
else
    bad "threads lab: rc=$rc1/$rc2 threads $t1/${t2:-none} $(tail -1 $T/send1.log) $(tail -1 $T/send2.log 2>/dev/null) $(diff $T/thr.ref $T/thr.out | head -3 | tr '\n' '|')"
fi

# receiver killed mid-stream: the original finishes on node 1
port=$((8000 + RANDOM % 1000))
ZDTM_STEPS=30 "$LAB" exec 1 "$MOS_BIN/zdtm_bigmap_pie" > $T/big.out 2>&1 & src=$!
wait_ready $T/big.out
"$LAB" exec 2 "$CK" receive --listen $node2:$port > $T/recv.log 2>&1 & recv=$!
sleep 0.3
"$LAB" exec 1 "$CK" send $src $node2:$port > $T/send.log 2>&1 & send=$!
for _ in $(seq 1 400); do pgrep -P $recv >/dev/null && break; sleep 0.005; done; kill -9 $recv 2>/dev/null # once the husk exists: mid-stream
wait $send; rc=$?
wait $src; src_rc=$?
[ $rc != 0 ] && [ $src_rc = 0 ] && grep -q '^PASS' $T/big.out && ok "receiver killed mid-stream: the original finished on node 1" \
    || bad "receiver killed: send rc=$rc, original rc=$src_rc, $(tail -1 $T/big.out)"

"$LAB" down >/dev/null 2>&1 && ok "lab down" || bad "lab down"
echo "$passes passed, $fails failed"
[ $fails = 0 ]
