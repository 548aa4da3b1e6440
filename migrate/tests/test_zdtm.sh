#!/bin/bash
# zdtm-style migration tests: every program runs once uninterrupted and once checkpointed
# mid-run (mosckpt dump) and restored (mosckpt restore); both outputs, exit status included,
# must be identical byte for byte. Then: many cycles of one process, an interpreter, fault
# cases (corrupt/truncated images, a receiver killed mid-stream, stay reasons).
# Needs ptrace over its own children (Yama ptrace_scope <= 1 or root).
set -u
B=$MOS_BIN
CK=$B/mosckpt
T=$(mktemp -d /tmp/mos-zdtm.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
# fds the test runner may have left open would (rightly) be refused by the dump
for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done
passes=0; fails=0
PY=/usr/bin/python3; [ -x $PY ] || PY=python3 # the real binary, not a wrapper script
ok() { passes=$((passes+1)); echo "ok: $*"; }
bad() { fails=$((fails+1)); echo "FAIL: $*"; }

wait_ready() { # wait_ready FILE: until the program said "ready"
    for _ in $(seq 1 500); do grep -q '^ready' "$1" 2>/dev/null && return 0; sleep 0.01; done
    return 1
}

# run_pair NAME DELAY CMD...: reference run, then a run dumped DELAY s after "ready".
run_pair() {
    local name=$1 delay=$2; shift 2
    local d=$T/$name; mkdir -p "$d/ref" "$d/mig"
    (cd "$d/ref" && "$@" "$d/ref" > out 2>&1; echo "exit $?" >> out)
    (cd "$d/mig" && exec "$@" "$d/mig" > out 2>&1) & local pid=$!
    pids+=($pid)
    if ! wait_ready "$d/mig/out"; then bad "$name: never ready"; return; fi
    sleep "$delay"
    if ! "$CK" dump $pid "$d/img" > "$d/dump.log" 2>&1; then
        bad "$name: dump failed: $(tail -1 "$d/dump.log")"; return
    fi
    wait $pid 2>/dev/null
    (cd / && "$CK" restore "$d/img" > "$d/restore.log" 2>&1; echo "exit $?" >> "$d/mig/out")
    # files the program wrote must match too
    if cmp -s "$d/ref/out" "$d/mig/out" && diff -r -q -x out "$d/ref" "$d/mig" >/dev/null &&
       grep -q '^PASS' "$d/mig/out"; then
        ok "$name ($(grep -c . "$d/mig/out") lines identical, $(grep -o '[0-9]* pages' "$d/dump.log" | head -1))"
    else
        bad "$name: outputs differ: $(diff "$d/ref/out" "$d/mig/out" | head -4 | tr '\n' '|') $(tail -2 "$d/restore.log" | tr '\n' ' ')"
    fi
}

for prog in heap bigmap recursion fpu tls signals files filemap pipes anonfds shmanon unixpair memfd; do
    run_pair "$prog-pie" 0.15 "$B/zdtm_${prog}_pie"
done
for variant in nopie static staticpie; do
    for prog in heap fpu signals tls; do
        run_pair "$prog-$variant" 0.1 "$B/zdtm_${prog}_$variant"
    done
done
# the same selection without PAGEMAP_SCAN (kernels before 6.7 read /proc/PID/pagemap)
MOS_NO_PAGEMAP_SCAN=1 run_pair bigmap-pagemap 0.1 "$B/zdtm_bigmap_pie"
MOS_NO_PAGEMAP_SCAN=1 run_pair filemap-pagemap 0.1 "$B/zdtm_filemap_pie"
# stdout a pipe: fd 1 of the restored process is the restorer's own
d=$T/pipe; mkdir -p $d
ZDTM_STEPS=20 "$B/zdtm_tls_pie" | cat > $d/ref
(ZDTM_STEPS=20 exec "$B/zdtm_tls_pie" | cat > $d/mig1) &
wait_ready $d/mig1
pid=$(pgrep -n -f "$B/zdtm_tls_pie")
if "$CK" dump "$pid" $d/img >/dev/null 2>&1 && "$CK" restore $d/img > $d/mig2; then
    wait; cat $d/mig1 $d/mig2 > $d/mig
    cmp -s $d/ref $d/mig && ok "stdout pipe reconnected to the restorer's" || bad "pipe output differs"
else bad "pipe: dump or restore failed"; fi

# a real program with a pipe of its own (xz keeps one to hear of signals), checkpointed
# mid-compression and restored: the same bytes as an uninterrupted run
d=$T/xz; mkdir -p $d
$PY -c 'import random, base64, sys
random.seed(7); sys.stdout.buffer.write(base64.encodebytes(random.randbytes(12 << 20)))' > $d/in
xz -3 -T1 -c $d/in > $d/ref.xz
(exec xz -3 -T1 -c $d/in > $d/mig.xz) & xpid=$!; pids+=($xpid)
for _ in $(seq 1 1000); do [ -s $d/mig.xz ] && break; sleep 0.01; done
if [ -s $d/mig.xz ] && "$CK" dump $xpid $d/img > $d/dump.log 2>&1; then
    wait $xpid 2>/dev/null
    at=$("$CK" info $d/img | grep -c ' pipe pipe:')
    (cd / && "$CK" restore $d/img > $d/restore.log 2>&1); rc=$?
    [ $rc = 0 ] && [ "$at" = 2 ] && cmp -s $d/ref.xz $d/mig.xz \
        && ok "xz -T1 with its pipe, dumped mid-run and restored: the same $(stat -c %s $d/ref.xz) bytes" \
        || bad "xz: rc=$rc, pipe fds $at, $(tail -1 $d/restore.log) $(cmp $d/ref.xz $d/mig.xz 2>&1)"
else
    bad "xz: dump failed: $(tail -1 $d/dump.log 2>/dev/null)"
fi

# a real program with socket pairs of its own: python3's asyncio keeps one for its self-pipe,
# and two coroutines talk over another with a backlog in the kernel's queues at the dump
d=$T/asyncio; mkdir -p $d
cat > $d/aio.py <<'PYEOF'
import asyncio, hashlib, socket, sys
async def main(steps):
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False); b.setblocking(False)
    h = hashlib.sha256()
    print("ready", flush=True)
    for i in range(steps):
        await loop.sock_sendall(a, b"".join(b"message %d.%d\n" % (i, k) for k in range(40)))
        h.update(await loop.sock_recv(b, 400))
        await loop.sock_sendall(b, b"ack %d\n" % i)
        h.update(await loop.sock_recv(a, 4))
        await asyncio.sleep(0.01)
    print("step", steps, "digest", h.hexdigest(), flush=True)
asyncio.run(main(int(sys.argv[1])))
PYEOF
$PY $d/aio.py 150 > $d/ref 2>&1
(exec $PY $d/aio.py 150 > $d/mig 2>&1) & apid=$!; pids+=($apid)
wait_ready $d/mig; sleep 0.5
if "$CK" dump $apid $d/img > $d/dump.log 2>&1; then
    wait $apid 2>/dev/null
    queued=$("$CK" info $d/img --json | $PY -c 'import json, sys
print(sum(f.get("queued", 0) for f in json.load(sys.stdin)["fds"] if f["kind"] == "unix"))')
    nsock=$("$CK" info $d/img | grep -c ' unix socket:')
    (cd / && "$CK" restore $d/img >> $d/mig 2>&1); rc=$?
    [ $rc = 0 ] && [ "$nsock" = 4 ] && [ "$queued" -gt 0 ] && cmp -s $d/ref $d/mig \
        && ok "python3 asyncio with its socket pairs ($queued bytes queued), dumped mid-run and restored: the same digest" \
        || bad "asyncio: rc=$rc, sockets $nsock, queued $queued, $(tail -1 $d/mig) / $(tail -1 $d/ref)"
else
    bad "asyncio: dump failed: $(tail -1 $d/dump.log)"
fi

# a real program with a memfd of its own: the JVM's ZGC keeps its heap in one ("java_heap")
# mapped at three addresses, with 20 threads and more working on it; checkpointed mid-run and
# restored, it must compute the same digest over what it allocated
d=$T/java; mkdir -p $d
cat > $d/Churn.java <<'JEOF'
import java.security.MessageDigest;
import java.util.ArrayList;
public class Churn {
    public static void main(String[] a) throws Exception {
        int steps = Integer.parseInt(a[0]);
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        ArrayList<byte[]> keep = new ArrayList<>();
        long seed = 7;
        System.out.println("ready");
        for (int s = 0; s < steps; s++) {
            for (int k = 0; k < 2000; k++) {
                byte[] b = new byte[1024 + (int) (seed % 4096)];
                seed = seed * 6364136223846793005L + 1442695040888963407L;
                seed = seed < 0 ? -seed : seed;
                b[(int) (seed % b.length)] = (byte) s;
                if (k % 50 == 0) keep.add(b);
                if (keep.size() > 2000) keep.remove(0);
                md.update(b);
            }
            Thread.sleep(20);
            if (s % 10 == 0) System.out.println("step " + s + " kept " + keep.size());
        }
        StringBuilder h = new StringBuilder();
        for (byte x : md.digest()) h.append(String.format("%02x", x));
        System.out.println("digest " + h);
    }
}
JEOF
JAVA=(java -XX:+UseZGC -XX:-UsePerfData -Xmx256m -cp $d Churn 150)
if javac -d $d $d/Churn.java > $d/javac.log 2>&1; then
    "${JAVA[@]}" > $d/ref 2>&1
    (exec "${JAVA[@]}" > $d/mig 2>&1) & jpid=$!; pids+=($jpid)
    wait_ready $d/mig; sleep 1
    if "$CK" dump $jpid $d/img > $d/dump.log 2>&1; then
        wait $jpid 2>/dev/null
        maps=$("$CK" info $d/img --json | $PY -c 'import json, sys
j = json.load(sys.stdin)
print(len(j["memfds"]), sum(v["kind"] == "memfd" for v in j["vmas"]), j["threads"])')
        (cd / && "$CK" restore $d/img >> $d/mig 2>&1); rc=$?
        read -r nobj nmaps nthr <<<"$maps"
        [ $rc = 0 ] && [ "$nobj" = 1 ] && [ "$nmaps" -ge 2 ] && cmp -s $d/ref $d/mig \
            && ok "java with ZGC (its heap one memfd at $nmaps addresses, $nthr threads), dumped mid-run and restored: the same digest" \
            || bad "java: rc=$rc, memfds/maps/threads $maps, $(tail -1 $d/mig) / $(tail -1 $d/ref)"
    else
        bad "java: dump failed: $(tail -1 $d/dump.log)"
    fi
else
    bad "java: javac failed: $(tail -1 $d/javac.log)"
fi

# the image records which pages of the private file map travel: written ones only
d=$T/filemap-pie
if "$CK" info $d/img --json > $d/info.json 2>/dev/null && python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
same = [v for v in j["vmas"] if v["path"].endswith("same.dat")]
repl = [v for v in j["vmas"] if v["kind"] == "file-copy"]
assert same and same[0]["kind"] == "file" and 16 <= same[0]["pages"] < 64, same
assert repl and repl[0]["pages"] == 64, repl' $d/info.json; then
    ok "private file maps: written pages only for the unchanged file, all for the replaced one"
else bad "file map page selection: $(grep -A6 same.dat $d/info.json | tr -d '\n ')"; fi
# a mapped file changed after the dump: restore refuses, naming it
touch -d '2001-01-01' $d/mig/same.dat
out=$("$CK" restore $d/img 2>&1); rc=$?
[ $rc != 0 ] && grep -q "same.dat changed since the image was made" <<<"$out" && [ "$(wc -l <<<"$out")" = 1 ] \
    && ok "changed mapped file: restore refuses ($out)" || bad "changed mapped file: rc=$rc $out"

# foreground restore passes signals on and exits with the process's status
d=$T/fg; mkdir -p $d
(ZDTM_STEPS=400 exec "$B/zdtm_tls_pie" > $d/out 2>&1) & pid=$!; pids+=($pid)
wait_ready $d/out
if "$CK" dump $pid $d/img > /dev/null 2>&1; then
    wait $pid 2>/dev/null
    "$CK" restore $d/img > /dev/null 2>&1 & rpid=$!
    copy=""
    for _ in $(seq 1 500); do # until the copy runs: its own name back, no tracer
        copy=$(pgrep -P $rpid | head -1)
        [ -n "$copy" ] && grep -q '^zdtm_tls_pie' /proc/$copy/comm 2>/dev/null &&
            grep -q 'TracerPid:[[:space:]]*0$' /proc/$copy/status 2>/dev/null && break
        sleep 0.01
    done
    kill -TERM $rpid; wait $rpid; rc=$?
    sleep 0.1
    [ $rc = 143 ] && [ -n "$copy" ] && ! kill -0 $copy 2>/dev/null \
        && ok "foreground restore: SIGTERM passed on, exit status 143" \
        || bad "foreground restore: rc=$rc copy=$copy"
else bad "foreground restore: dump failed"; fi

# --carry-files: the mapped files travel whole, so a changed file no longer matters
d=$T/carry; mkdir -p $d/mig
(ZDTM_STEPS=30 exec "$B/zdtm_filemap_pie" $d/mig > $d/carry.out 2>&1) & pid=$!; pids+=($pid)
wait_ready $d/carry.out
if "$CK" dump $pid $d/carry.img --carry-files > $d/carry.log 2>&1; then
    wait $pid 2>/dev/null
    touch -d '2002-02-02' $d/mig/same.dat
    "$CK" restore $d/carry.img > /dev/null 2>&1; rc=$?
    [ $rc = 0 ] && grep -q '^PASS' $d/carry.out && ok "--carry-files: restored although the file changed ($(grep -o '[0-9]* pages' $d/carry.log | head -1))" \
        || bad "--carry-files: rc=$rc $(tail -1 $d/carry.out)"
else bad "--carry-files dump: $(cat $d/carry.log)"; fi

# --- an interpreter migrated mid-computation
if command -v python3 >/dev/null; then
    run_pair python3 0.3 $PY -c '
import sys, time
acc, f = 1, 0.5
print("ready", flush=True)
for i in range(40):
    acc = acc * 3 + i; f = f * 1.01 + 1.0 / (i + 1)
    d = {str(k): k * k for k in range(2000)}
    print(i, acc % 1000000007, "%.12f" % f, sum(d.values()), flush=True)
    time.sleep(0.02)
print("PASS")'
    # CPython's anonymous mmap is MAP_SHARED|MAP_ANONYMOUS: shared anonymous memory of its own
    run_pair python3-mmap 0.3 $PY -c '
import hashlib, mmap, time
m = mmap.mmap(-1, 1 << 20)
print("ready", flush=True)
for i in range(40):
    m[i * 4096:i * 4096 + 64] = hashlib.sha256(str(i).encode()).digest() * 2
    print(i, hashlib.sha256(m[:]).hexdigest()[:16], flush=True)
    time.sleep(0.02)
print("PASS")'
else
    bad "python3 missing: the interpreter test cannot run"
fi
if command -v perl >/dev/null; then
    run_pair perl 0.3 perl -e '$|=1; my %h; print "ready\n"; for my $i (0..39) {
        $h{$_} = $_ * $i for 0..2000; my $s = 0; $s += $h{$_} for keys %h;
        printf "%d %d %.10f\n", $i, $s, sqrt($i + 0.5); select(undef,undef,undef,0.02) } print "PASS\n"'
fi

# --- 24 dump/restore cycles of one process (10 s of steps: on a loaded machine 24 cycles must
# still land before it ends)
d=$T/cycles; mkdir -p $d
ZDTM_STEPS=600 ZDTM_STEP_MS=16 "$B/zdtm_heap_pie" > $d/ref 2>&1; echo "exit $?" >> $d/ref
(ZDTM_STEPS=600 ZDTM_STEP_MS=16 exec "$B/zdtm_heap_pie" > $d/out 2>&1) & pid=$!; pids+=($pid)
wait_ready $d/out; n=0; cycle_err=""
for i in $(seq 1 24); do
    sleep 0.02
    if ! "$CK" dump $pid $d/img > $d/log 2>&1; then cycle_err="dump $i: $(tail -1 $d/log)"; break; fi
    [ $i = 1 ] && wait $pid 2>/dev/null
    if [ $i -lt 24 ]; then
        pid=$("$CK" restore $d/img --detach 2>$d/log) || { cycle_err="restore $i: $(tail -1 $d/log)"; break; }
        pids+=($pid)
    else
        "$CK" restore $d/img 2>$d/log; echo "exit $?" >> $d/out
    fi
    n=$i
done
if [ -z "$cycle_err" ] && cmp -s $d/ref $d/out; then ok "$n dump/restore cycles of one process"
else bad "cycles: $cycle_err $(diff $d/ref $d/out | head -3 | tr '\n' '|')"; fi

# --- faults
d=$T/fault; mkdir -p $d
(ZDTM_STEPS=40 exec "$B/zdtm_heap_pie" > $d/out 2>&1) & pid=$!; pids+=($pid)
wait_ready $d/out
"$CK" dump $pid $d/img --leave-running >/dev/null 2>&1 && kill -0 $pid 2>/dev/null \
    && ok "dump --leave-running: the process runs on" || bad "--leave-running"
size=$(stat -c %s $d/img)
cp $d/img $d/flip; printf '\x5a' | dd of=$d/flip bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
cmp -s $d/img $d/flip || printf '\xa5' | dd of=$d/flip bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
out=$("$CK" restore $d/flip 2>&1); rc=$?
[ $rc != 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "corrupt image" <<<"$out" \
    && ok "flipped byte: restore refuses ($out)" || bad "flipped byte: rc=$rc $out"
head -c $((size * 2 / 3)) $d/img > $d/trunc
out=$("$CK" restore $d/trunc 2>&1); rc=$?
[ $rc != 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "truncated" <<<"$out" \
    && ok "truncated image: restore refuses ($out)" || bad "truncated: rc=$rc $out"
out=$("$CK" info $d/trunc 2>&1); rc=$?
[ $rc != 0 ] && ok "info on a truncated image fails" || bad "info truncated: rc=$rc"
"$CK" info $d/img --json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["pages"] > 0 and j["vmas"]' \
    && ok "info --json parses" || bad "info --json"
# no process left behind by the failed restores (ours: in this test's session; other tests and
# daemons on the machine may have husks of their own)
sid=$(ps -o sid= -p $$ | tr -d ' ')
husks_left() { ps -eo stat=,sid=,comm= | awk -v s="$sid" '$3 == "mos-husk" && $2 == s && $1 !~ /^Z/'; }
for _ in $(seq 40); do [ -z "$(husks_left)" ] && break; sleep 0.05; done
left=$(husks_left)
[ -z "$left" ] && ok "no husk left behind" || bad "husk left: $left"

# receiver killed mid-stream: the original continues and finishes correctly (both ends prove
# the same key, given with --key). The kill must land before the commit: when the stream was
# already done (the sender says so, exit 0: a loaded host let it finish before the kill), the
# moved copy died with its receiver, which is no case of the test; another try, three at most.
port=$((20000 + RANDOM % 20000))
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > $d/key; echo >> $d/key; chmod 600 $d/key
wait_listen() { for _ in $(seq 1 500); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.01; done; return 1; }
for try in 1 2 3; do
    (ZDTM_STEPS=40 exec "$B/zdtm_bigmap_pie" > $d/big 2>&1) & big=$!; pids+=($big)
    wait_ready $d/big
    "$CK" receive --listen $port --key $d/key > $d/recv.log 2>&1 & recv=$!
    wait_listen $port
    "$CK" send $big 127.0.0.1:$port --key $d/key > $d/send.log 2>&1 & send=$!
    # SIGSTOP first: once the husk exists the receiver takes not one more byte
    for _ in $(seq 1 400); do pgrep -P $recv >/dev/null && break; sleep 0.005; done
    kill -STOP $recv; kill -9 $recv
    wait $send; src=$?
    wait $big; brc=$?
    wait $recv 2>/dev/null
    [ $src != 0 ] && break
    echo "note: try $try: the stream ended before the receiver was killed; again"
done
[ $src != 0 ] && [ $brc = 0 ] && grep -q '^PASS' $d/big && ok "receiver killed mid-stream: sender fails ($(tail -1 $d/send.log | cut -c1-80)), original finishes" \
    || bad "receiver killed: send rc=$src, original rc=$brc $(tail -1 $d/big)"

# direct migration over TCP on this host
(ZDTM_STEPS=30 exec "$B/zdtm_signals_pie" > $d/ref_sig 2>&1); echo "exit $?" >> $d/ref_sig
(ZDTM_STEPS=30 exec "$B/zdtm_signals_pie" > $d/sig 2>&1) & sp=$!; pids+=($sp)
wait_ready $d/sig
"$CK" receive --listen $((port + 1)) --key $d/key > $d/recv2.log 2>&1 & recv=$!
wait_listen $((port + 1))
"$CK" send $sp 127.0.0.1:$((port + 1)) --key $d/key > $d/send2.log 2>&1; src=$?
wait $recv; echo "exit $?" >> $d/sig
[ $src = 0 ] && cmp -s $d/ref_sig $d/sig && ok "send/receive over TCP: identical output" \
    || bad "send/receive: rc=$src $(tail -1 $d/send2.log) $(diff $d/ref_sig $d/sig | head -3 | tr '\n' '|')"
# the sender killed in the commit window: it has sent COMMIT (it stops itself there:
# MOS_TEST_STOP_AFTER_COMMIT) and has not heard DONE. The copy may run by then, so the
# original must die with its sender (without that, the rescue frame let it go on beside the
# copy: two copies writing one output). One copy, the output of an uninterrupted run.
(ZDTM_STEPS=30 exec "$B/zdtm_signals_pie" > $d/sig8 2>&1) & sp=$!; pids+=($sp)
wait_ready $d/sig8
"$CK" receive --listen $((port + 7)) --key $d/key > $d/recv8.log 2>&1 & recv=$!
wait_listen $((port + 7))
(MOS_TEST_STOP_AFTER_COMMIT=1 exec "$CK" send $sp 127.0.0.1:$((port + 7)) --key $d/key > $d/send8.log 2>&1) & send=$!
stopped=1
for _ in $(seq 1 3000); do
    [ "$(awk '/^State:/ {print $2}' /proc/$send/status 2>/dev/null)" = T ] && stopped=0 && break
    sleep 0.01
done
kill -9 $send; wait $send 2>/dev/null
wait $recv; echo "exit $?" >> $d/sig8
wait $sp; orc=$?
[ $stopped = 0 ] && [ $orc = 137 ] && cmp -s $d/ref_sig $d/sig8 \
    && ok "sender killed after COMMIT: the original died with it, the copy ran on: identical output" \
    || bad "sender killed after COMMIT: stopped=$stopped, original rc=$orc (137: killed) $(tail -1 $d/send8.log) $(diff $d/ref_sig $d/sig8 | head -3 | tr '\n' '|')"

# live: zdtm_dirty (page writes, MADV_DONTNEED, regions swapped by mremap every step) sent
# with --live while it writes, three times: identical output, and pages were kept
export ZDTM_MIB=96 ZDTM_STEPS=120 ZDTM_WRITES=96
(exec "$B/zdtm_dirty_pie" > $d/ref_dirty 2>&1); echo "exit $?" >> $d/ref_dirty
for try in 1 2 3; do
    (exec "$B/zdtm_dirty_pie" > $d/dirty 2>&1) & dp=$!; pids+=($dp)
    wait_ready $d/dirty
    "$CK" receive --listen $((port + 2)) --key $d/key > $d/recv3.log 2>&1 & recv=$!
    wait_listen $((port + 2))
    "$CK" send $dp 127.0.0.1:$((port + 2)) --key $d/key --live > $d/send3.log 2>&1; src=$?
    wait $recv; echo "exit $?" >> $d/dirty
    kept=$(sed -n 's/.* \([0-9]*\) kept$/\1/p' $d/send3.log)
    [ $src = 0 ] && [ "${kept:-0}" -gt 0 ] && cmp -s $d/ref_dirty $d/dirty \
        && ok "live send $try: identical output ($(grep '^live:' $d/send3.log))" \
        || bad "live send $try: rc=$src $(tail -2 $d/send3.log | tr '\n' ' ') $(diff $d/ref_dirty $d/dirty | head -3 | tr '\n' '|')"
done
# a real program moved live: xz mid-compression, its input file at fd 3 and its self-pipe
# (the husk started ahead gets them placed by injection), the same bytes as an uninterrupted run
(exec xz -3 -T1 -c $T/xz/in > $d/live.xz) & xp=$!; pids+=($xp)
for _ in $(seq 1 1000); do [ -s $d/live.xz ] && break; sleep 0.01; done
"$CK" receive --listen $((port + 4)) --key $d/key > $d/recv5.log 2>&1 & recv=$!
wait_listen $((port + 4))
"$CK" send $xp 127.0.0.1:$((port + 4)) --key $d/key --live > $d/send5.log 2>&1; src=$?
wait $recv; rrc=$?; wait $xp 2>/dev/null
[ $src = 0 ] && [ $rrc = 0 ] && cmp -s $T/xz/ref.xz $d/live.xz \
    && ok "xz moved live mid-compression: the same $(stat -c %s $d/live.xz) bytes ($(grep '^live:' $d/send5.log))" \
    || bad "xz live: send rc=$src, receive rc=$rrc $(grep -h error $d/send5.log $d/recv5.log | head -2 | tr '\n' ' ') $(cmp $T/xz/ref.xz $d/live.xz 2>&1)"
# the JVM moved live on this host: its tids are the frozen original's until the commit, so the
# copy's threads get fresh ones, and glibc's cached tids must follow (else the JVM dies at its
# exit, pthread_getattr_np failing with ESRCH); its memfd heap goes as one object
if [ -s $T/java/Churn.class ]; then
    (exec "${JAVA[@]}" > $d/java 2>&1) & jp=$!; pids+=($jp)
    wait_ready $d/java; sleep 1
    "$CK" receive --listen $((port + 9)) --key $d/key > $d/recv9.log 2>&1 & recv=$!
    wait_listen $((port + 9))
    "$CK" send $jp 127.0.0.1:$((port + 9)) --key $d/key --live > $d/send9.log 2>&1; src=$?
    wait $recv; rrc=$?; wait $jp 2>/dev/null
    [ $src = 0 ] && [ $rrc = 0 ] && grep -q 'fresh tid' $d/recv9.log && cmp -s $T/java/ref $d/java \
        && ok "java with ZGC moved live, fresh tids: the same digest ($(grep '^live:' $d/send9.log))" \
        || bad "java live: send rc=$src, receive rc=$rrc $(grep -h error $d/send9.log $d/recv9.log | head -2 | tr '\n' ' ') $(tail -1 $d/java)"
else bad "java live: no Churn.class"; fi
# A live move of zdtm_dirty whose receiver has begun to hear from its sender, both in the
# background (PORT_OFFSET N: logs recvN.log and sendN.log): dp, recv and send are set.
live_move_begun() {
    (exec "$B/zdtm_dirty_pie" > $d/dirty 2>&1) & dp=$!; pids+=($dp)
    wait_ready $d/dirty
    "$CK" receive --listen $((port + $1)) --key $d/key > $d/recv$2.log 2>&1 & recv=$!
    wait_listen $((port + $1))
    "$CK" send $dp 127.0.0.1:$((port + $1)) --key $d/key --live > $d/send$2.log 2>&1 & send=$!
    for _ in $(seq 1 400); do grep -q . $d/recv$2.log 2>/dev/null && break; sleep 0.005; done
}
no_copy() { [ -z "$(ps -eo sid=,comm= | awk -v s="$sid" '$1 == s && $2 == "zdtm_dirty_pie"')" ]; }
# the receiver killed during the live rounds: the sender fails, the original never stopped
# for long and finishes right; no second copy
live_move_begun 3 4
kill -9 $recv
wait $send; src=$?; wait $dp; drc=$?; wait $recv 2>/dev/null
[ $src != 0 ] && [ $drc = 0 ] && grep -q '^PASS' $d/dirty && no_copy \
    && ok "receiver killed during the live rounds: sender fails ($(tail -1 $d/send4.log | cut -c1-70)), the original finishes right" \
    || bad "receiver killed mid-live: send rc=$src, original rc=$drc $(tail -1 $d/dirty)"
# the sender killed during the live rounds: its userfaultfd closes with it, the original runs
# on untracked and finishes right; the receiver gives up, leaving no copy
live_move_begun 5 6
kill -9 $send
wait $send 2>/dev/null; wait $recv; rrc=$?; wait $dp; drc=$?
[ $rrc != 0 ] && [ $drc = 0 ] && grep -q '^PASS' $d/dirty && no_copy \
    && ok "sender killed during the live rounds: receiver fails ($(tail -1 $d/recv6.log | cut -c1-70)), the original finishes right" \
    || bad "sender killed mid-live: receive rc=$rrc, original rc=$drc $(tail -1 $d/dirty) $(tail -1 $d/recv6.log)"
# the sender killed the moment it holds the job (its first freeze: seized, in or between
# injected calls): the job goes on as it was seized (inject's rescue frame: registers, mask,
# FPU state) and its output is that of an uninterrupted run; the receiver gives up, no copy.
# A poller starts the sender and kills it as soon as the job shows a tracer.
(exec "$B/zdtm_dirty_pie" > $d/dirty 2>&1) & dp=$!; pids+=($dp)
wait_ready $d/dirty
"$CK" receive --listen $((port + 6)) --key $d/key > $d/recv7.log 2>&1 & recv=$!
wait_listen $((port + 6))
$PY - "$dp" "$CK" send "$dp" 127.0.0.1:$((port + 6)) --key $d/key --live > $d/send7.log 2>&1 <<'EOF'
import subprocess, sys, time
job, cmd = sys.argv[1], sys.argv[2:]
sender = subprocess.Popen(cmd)
deadline = time.monotonic() + 60
while sender.poll() is None and time.monotonic() < deadline:
    with open(f"/proc/{job}/status") as f:
        if any(l.startswith("TracerPid:") and l.split()[1] != "0" for l in f):
            sender.kill()
            sender.wait()
            print("killed the sender while it held the job")
            sys.exit(0)
sender.kill()
sys.exit(1)
EOF
held=$?
wait $recv; rrc=$?; wait $dp; drc=$?; echo "exit $drc" >> $d/dirty
[ $held = 0 ] && [ $rrc != 0 ] && cmp -s $d/ref_dirty $d/dirty && no_copy \
    && ok "sender killed while holding the job: it goes on as seized, identical output; receiver fails ($(tail -1 $d/recv7.log | cut -c1-60))" \
    || bad "sender killed while holding the job: poller rc=$held, receive rc=$rrc, original rc=$drc $(tail -1 $d/send7.log) $(diff $d/ref_dirty $d/dirty | head -3 | tr '\n' '|')"
unset ZDTM_MIB ZDTM_STEPS ZDTM_WRITES
# a real program whose injector dies anywhere: gzip compressing while `mosckpt dump
# --leave-running` holds it, the dumper killed at a random moment (0 to 6 ms after it seized
# gzip: in the freeze, in or between injected calls, at the release); every gzip must end
# with the bytes of an uninterrupted run (with the mosckpt of f8848a6, before the rescue frame,
# 3 of these 12 died of SIGSEGV)
$PY - "$CK" $d <<'EOF' > $d/gzip_kill.log 2>&1
import filecmp, random, subprocess, sys, time
ck, d = sys.argv[1], sys.argv[2]
r = random.Random(11)
with open(f"{d}/gz.in", "w") as f:
    for _ in range(60000):
        f.write(" ".join(r.choice(["mos", "gzip", "deputy", "husk", "rescue", str(r.random())])
                         for _ in range(8)) + "\n")
subprocess.run(["gzip", "-9", "-c", f"{d}/gz.in"], stdout=open(f"{d}/gz.ref", "wb"), check=True)
runs, killed, wrong = 12, 0, []
for i in range(runs):
    with open(f"{d}/gz.out", "wb") as out:
        g = subprocess.Popen(["gzip", "-9", "-c", f"{d}/gz.in"], stdout=out, close_fds=True,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.05)
        dumper = subprocess.Popen([ck, "dump", str(g.pid), f"{d}/gz.img", "--leave-running"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while dumper.poll() is None and g.poll() is None and time.monotonic() < deadline:
            with open(f"/proc/{g.pid}/status") as f:
                if any(l.startswith("TracerPid:") and l.split()[1] != "0" for l in f):
                    time.sleep(r.uniform(0, 0.006))
                    dumper.kill()
                    break
        killed += dumper.wait() == -9
        rc = g.wait(timeout=300)
    if rc != 0 or not filecmp.cmp(f"{d}/gz.out", f"{d}/gz.ref", shallow=False):
        wrong.append(f"run {i}: gzip rc {rc}")
print(f"{runs} runs, the dumper killed while holding gzip in {killed}, wrong: {wrong}")
sys.exit(0 if not wrong and killed >= runs // 2 else 1)
EOF
[ $? = 0 ] && ok "gzip, its dumper killed at random moments while it held gzip: $(tail -1 $d/gzip_kill.log)" \
    || bad "gzip with its dumper killed: $(tail -2 $d/gzip_kill.log | tr '\n' ' ')"

# stay reasons: refused with the reason, the process untouched
sleep 30 & s1=$!; pids+=($s1)
$PY -c 'import threading, time; t = threading.Thread(target=time.sleep, args=(30,)); t.start(); t.join()' & s2=$!; pids+=($s2)
for _ in $(seq 1 500); do grep -q 'Threads:.*2' /proc/$s2/status 2>/dev/null && break; sleep 0.01; done
# threads travel natively (test_threads); only a guest move refuses them (test_stay)
out=$("$CK" check $s2 2>&1); [ $? = 0 ] && ok "threaded process may be checkpointed: $out" || bad "threads: $out"
# a pipe of its own travels (zdtm_pipes); one another process holds too does not
$PY -c 'import os, time; r, w = os.pipe(); time.sleep(30)' & s3=$!; pids+=($s3)
for _ in $(seq 1 500); do [ -e /proc/$s3/fd/4 ] && break; sleep 0.01; done
out=$("$CK" check $s3 2>&1); [ $? = 0 ] && ok "a pipe of its own may be checkpointed: $out" || bad "own pipe: $out"
sleep 31 | $PY -c 'import os, time; os.dup2(0, 3); time.sleep(30)' & s4=$!; pids+=($s4)
for _ in $(seq 1 500); do [ -e /proc/$s4/fd/3 ] && break; sleep 0.01; done
out=$("$CK" check $s4 2>&1)
[ $? != 0 ] && grep -q "fd 3 is a pipe shared with pid" <<<"$out" && ok "shared pipe fd refused: $out" || bad "shared pipe fd: $out"
pkill -f '^sleep 31$'
# a socket pair of its own travels; one whose end another process holds, a named socket, or a
# queue with descriptors in flight does not
$PY -c 'import socket, time; a, b = socket.socketpair(); time.sleep(30)' & s5=$!; pids+=($s5)
for _ in $(seq 1 500); do [ -e /proc/$s5/fd/4 ] && break; sleep 0.01; done
out=$("$CK" check $s5 2>&1); [ $? = 0 ] && ok "a socket pair of its own may be checkpointed: $out" || bad "own socket pair: $out"
$PY -c 'import os, socket, sys, time
a, b = socket.socketpair()
if os.fork() == 0:
    a.close(); print("ready", os.getpid(), b.fileno(), flush=True); time.sleep(30); sys.exit()
b.close(); time.sleep(30)' > $d/sock.shared & s6=$!; pids+=($s6)
wait_ready $d/sock.shared; read -r _ s6c s6fd < $d/sock.shared; pids+=($s6c)
out=$("$CK" check $s6c 2>&1)
[ $? != 0 ] && grep -q "fd $s6fd is a unix socket shared with pid $s6" <<<"$out" \
    && ok "socket whose other end is another process's refused: $out" || bad "shared socket: $out"
$PY -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); time.sleep(30)' $d/sock.named & s7=$!; pids+=($s7)
for _ in $(seq 1 500); do [ -S $d/sock.named ] && break; sleep 0.01; done
out=$("$CK" check $s7 2>&1)
[ $? != 0 ] && grep -q "is a unix socket that is bound to a name" <<<"$out" \
    && ok "named socket refused: $out" || bad "named socket: $out"
$PY -c 'import socket, time
a, b = socket.socketpair(); c, e = socket.socketpair(); socket.send_fds(a, [b"x"], [0])
print("ready", flush=True); time.sleep(30)' > $d/sock.fds & s8=$!; pids+=($s8)
wait_ready $d/sock.fds
out=$("$CK" dump $s8 $d/sock.img 2>&1); rc=$?
if [ $rc != 0 ] && grep -q "its queue holds file descriptors in flight" <<<"$out" && kill -0 $s8 &&
   [ ! -e $d/sock.img ]; then
    ok "descriptors in flight: dump refused, the process runs on: $out"
else bad "descriptors in flight: rc=$rc $out"; fi
# with --close-other-fds (as mosrun -C) that pair is left closed, both ends (the first one
# is fd 3, before the socket that cannot travel), and the other pair travels
out=$("$CK" dump $s8 $d/sock.img --close-other-fds 2>&1); rc=$?
wait $s8 2>/dev/null # ended by the dump
socks=$("$CK" info $d/sock.img 2>/dev/null | awk '$3 == "unix" { printf "%s%s", n++ ? " " : "", $2 }')
[ $rc = 0 ] && [ "$socks" = "5 6" ] && ok "descriptors in flight, --close-other-fds: that pair left closed, fds $socks travel" \
    || bad "descriptors in flight, --close-other-fds: rc=$rc, unix fds '$socks' $out"
{ kill -9 $s5 $s6 $s6c $s7 $s8; wait $s5 $s6 $s7 $s8; } 2>/dev/null
# a memfd of its own travels (zdtm_memfd); one another process holds or maps does not: its fd
# is refused (left closed with --close-other-fds), and a map of it refuses the process
$PY -c 'import os, time; fd = os.memfd_create("own"); os.ftruncate(fd, 8192); time.sleep(30)' & s9=$!; pids+=($s9)
for _ in $(seq 1 500); do [ -e /proc/$s9/fd/3 ] && break; sleep 0.01; done
out=$("$CK" check $s9 2>&1); [ $? = 0 ] && ok "a memfd of its own may be checkpointed: $out" || bad "own memfd: $out"
for how in fd map; do
    $PY -c 'import mmap, os, sys, time
fd = os.memfd_create("shared"); os.ftruncate(fd, 8192)
m = mmap.mmap(fd, 8192) if sys.argv[1] == "map" else None
if os.fork() == 0:
    print("ready", os.getpid(), flush=True); time.sleep(30); sys.exit()
time.sleep(30)' $how > $d/memfd.$how & s10=$!; pids+=($s10)
    wait_ready $d/memfd.$how; read -r _ s10c < $d/memfd.$how; pids+=($s10c)
    # the child, which inherited the fd (and the map): its parent holds them too
    [ $how = fd ] && want="fd 3 is a memfd shared with pid $s10" || want="maps a memfd shared with pid $s10"
    out=$("$CK" check $s10c 2>&1)
    [ $? != 0 ] && grep -q "$want" <<<"$out" && [ "$(wc -l <<<"$out")" = 1 ] \
        && ok "memfd shared by $how refused: $out" || bad "memfd shared by $how: $out"
    kill -9 $s10 $s10c; wait $s10 2>/dev/null
done
kill -9 $s9; wait $s9 2>/dev/null
out=$("$CK" check $s1 2>&1); [ $? = 0 ] && ok "plain process: $out" || bad "plain: $out"
kill -STOP $s1
for _ in $(seq 1 500); do grep -q '^State:.*T' /proc/$s1/status && break; sleep 0.01; done
out=$("$CK" check $s1 2>&1); [ $? != 0 ] && grep -q "stopped" <<<"$out" && ok "stopped job refused: $out" || bad "stopped: $out"
kill -CONT $s1
for case in "shm:SysV shared memory" "uring:io_uring" "shared:shared writable mapping" \
            "inotify:fd 3 is inotify" "timer:POSIX timers" "child:child processes"; do
    what=${case%%:*}; want=${case#*:}
    "$B/zdtm_stayer" $what > $d/stay.$what 2>&1 & sp=$!; pids+=($sp)
    wait_ready $d/stay.$what
    out=$("$CK" dump $sp $d/stay.img 2>&1); rc=$?
    if [ $rc != 0 ] && grep -q "$want" <<<"$out" && [ "$(wc -l <<<"$out")" = 1 ] && kill -0 $sp &&
       [ ! -e $d/stay.img ] && [ "$(awk '{print $3}' /proc/$sp/stat)" = S ]; then
        ok "stays ($what): $out"
    else bad "stay $what: rc=$rc $out"; fi
    kill -9 $sp
done
# shared anonymous memory of its own travels (zdtm_shmanon); shared with another process, not
"$B/zdtm_stayer" shanon > $d/stay.shanon 2>&1 & sp=$!; pids+=($sp)
wait_ready $d/stay.shanon
sc=$(awk '/^ready/ { print $2 }' $d/stay.shanon); pids+=($sc)
out=$("$CK" dump "$sc" $d/stay.img 2>&1); rc=$?
if [ $rc != 0 ] && grep -q "shares anonymous memory with pid $sp" <<<"$out" && kill -0 "$sc" &&
   [ ! -e $d/stay.img ]; then ok "stays (shared anonymous memory another process maps): $out"
else bad "stay shanon: rc=$rc $out"; fi
kill -9 $sp "$sc"
out=$("$CK" check 999999999 2>&1); [ $? != 0 ] && ok "no such pid: $out" || bad "no such pid"

echo "$passes passed, $fails failed"
[ $fails = 0 ]
