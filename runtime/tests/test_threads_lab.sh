#!/bin/bash
# Multi-threaded jobs moved away from home and back (issue 13): each run as nobody under
# mosrun on node 1, moved by mosmigrate while its threads run, and compared byte for byte with
# an uninterrupted native run: mosthreads (8 workers in mutex/condvar/barrier loops writing
# at home, pthread_kill between them, a thread joined and one made while away) 1 -> 2 -> 3 ->
# home, native again at the end with every thread and its own tids; the same with a thread
# blocked reading stdin at home during each move; python3 threading and OpenMP 1 -> 2 -> home;
# POV-Ray rendering 1 -> 2 -> 3 -> home.
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init th

lab_up 3 --set balance=0
for i in 1 2 3; do "$LAB" exec --uncapped "$i" "$B/mosd" >> "$W/mosd$i.log" 2>&1 & done
wait_mosd 1 2 3
job_registered() { local j; j=$(pgrep -P "$1" ${2:+-x "$2"} | head -1); [ -n "$j" ] && registered "$j"; }
started() { wait_until 20 job_registered "$@"; pgrep -P "$1" ${2:+-x "$2"} | head -1; }
threads_of() { ls "/proc/$1/task" 2>/dev/null | wc -l; }
# move PID NODE: mosmigrate's answer must say the job now runs on NODE
move() {
    local out; out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$1" "$2" 2>&1)
    grep -q "now runs on ${3:-$2}" <<<"$out" && ok "$4" || bad "$4: $out"
}
native_home() { # PID MOSRUN EXE: its own process again: no filter, no tracer, mosrun's child
    local st; st=$(cat /proc/$1/status 2>/dev/null)
    grep -q "^Seccomp:[[:space:]]*0" <<<"$st" && grep -q "^TracerPid:[[:space:]]*0" <<<"$st" \
        && grep -q "^PPid:[[:space:]]*$2\$" <<<"$st" && [ "$(readlink /proc/$1/exe)" = "$3" ]
}
same() { # NAME A B
    if cmp -s "$2" "$3"; then ok "$1: identical to the native run ($(wc -l < "$2") lines)"
    else bad "$1 differs: $(diff "$2" "$3" | head -5 | tr '\n' ' ')"; fi
}

# 1. the reference, gates open from the start
mkdir -p "$W/g.nat" "$W/g.mig"; chmod 777 "$W/g.nat" "$W/g.mig"
touch "$W/g.nat/half" "$W/g.nat/end"
"${AS_USER[@]}" "$B/mosthreads" 600 "$W/g.nat" > "$W/nat.out" < /dev/null || bad "native mosthreads failed"

# 2. moved 1 -> 2 -> 3 -> home; the helper is joined and one made on node 2, the last step
#    waits until it is home
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosthreads" 600 "$W/g.mig" \
    < /dev/null > "$W/mig.out" 2> "$W/mig.err") &
run=$!
job=$(started $run mosthreads)
wait_until 20 eval '[ $(threads_of $job) = 10 ]'
tids_before=$(ls "/proc/$job/task" | sort)
move "$job" "$N2" "" "10 threads moved to node 2"
on 2 "$B/mosps" | grep -q " $job .*$N2 " && ok "node 2 shows the guest" || bad "mosps on 2: $(on 2 "$B/mosps")"
touch "$W/g.mig/half"
wait_until 20 eval '[ -s "$W/mig.out" ]'
move "$job" "$N3" "" "moved on to node 3 (with the thread made on node 2)"
move "$job" home "$N1" "node 3 sends it home"
native_home "$job" "$run" "$B/mosthreads" && ok "home, it runs natively again" \
    || bad "not native at home: $(grep -E 'Seccomp|TracerPid|PPid' /proc/$job/status 2>&1 | tr '\n' ' ')"
n=$(threads_of "$job")
strange=$(ls "/proc/$job/task" | sort | comm -13 <(echo "$tids_before") -)
[ "$n" = 9 ] && [ -z "$strange" ] && ok "home with its 9 threads, each with its own tid again" \
    || bad "home with $n threads; tids not its own: $strange"
touch "$W/g.mig/end"
wait $run; rc=$?
[ $rc = 0 ] && ok "exit status 0" || bad "exit status $rc ($(cat "$W/mig.err"))"
same "8 workers moved 1 -> 2 -> 3 -> home" "$W/nat.out" "$W/mig.out"

# 3. a thread blocked reading stdin at home during each move (the call is interrupted there and
#    made again after the move: no byte lost or read twice), fed between the moves
seq 1 20000 > "$W/in.all"; head -c 30000 "$W/in.all" > "$W/in.a"
tail -c +30001 "$W/in.all" | head -c 40000 > "$W/in.b"; tail -c +70001 "$W/in.all" > "$W/in.c"
"${AS_USER[@]}" "$B/mosthreads" 600 "$W/g.nat" stdin < "$W/in.all" > "$W/nat.in.out" || bad "native stdin run failed"
mkdir -p "$W/g.in"; chmod 777 "$W/g.in"; touch "$W/g.in/half"
mkfifo -m 666 "$W/fifo"
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosthreads" 600 "$W/g.in" stdin \
    < "$W/fifo" > "$W/in.out" 2> "$W/in.err") &
run=$!
exec 7> "$W/fifo"
job=$(started $run mosthreads)
# fifo_empty: the job has read all that was written (so its reader waits at home again)
fifo_empty() { python3 -c 'import fcntl, os, struct, sys, termios
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
sys.exit(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"0000"))[0] != 0)' "$W/fifo"; }
wait_until 20 eval '[ $(threads_of $job) -ge 10 ]'
move "$job" "$N2" "" "a thread blocked reading stdin: moved to node 2"
cat "$W/in.a" >&7
wait_until 20 fifo_empty
move "$job" "$N3" "" "reader blocked at home again: node 2 -> node 3 (its read interrupted there and made again here)"
cat "$W/in.b" >&7
wait_until 20 fifo_empty
move "$job" home "$N1" "and home, the read blocked once more"
cat "$W/in.c" >&7
exec 7>&-
touch "$W/g.in/end"
wait $run; rc=$?
[ $rc = 0 ] && ok "stdin run: exit status 0" || bad "stdin run: exit status $rc ($(cat "$W/in.err"))"
same "stdin read across three moves" "$W/nat.in.out" "$W/in.out"
grep -q "interrupted for a move" "$W/mosd2.log" && grep -q "interrupted for a move" "$W/mosd3.log" \
    && ok "on nodes 2 and 3 the move interrupted the read at home" \
    || bad "no read at home was interrupted for a move: $(grep -h supervisor "$W"/mosd*.log | tail -3)"

# 4. python3 with threading (4 threads taking turns under a Condition, meeting at a Barrier)
#    moved 1 -> 2 -> home; OpenMP (libgomp, 4 threads) mid-parallel-loop moved 1 -> 2 -> home
cat > "$W/th.py" <<'PY'
import os, sys, threading, time
N, steps, gate = 4, int(sys.argv[1]), sys.argv[2]
cv, turn, bar = threading.Condition(), [0], threading.Barrier(N)
def work(i):
    acc = i
    for s in range(steps):
        for k in range(3000):
            acc = (acc * 31 + k + s) % 1000003
        if i == 0:
            time.sleep(0.005)
            while s == steps - 1 and not os.path.exists(gate):
                time.sleep(0.01)
        with cv:
            while turn[0] != i:
                cv.wait()
            sys.stdout.write("step %d thread %d acc %d\n" % (s, i, acc)); sys.stdout.flush()
            turn[0] = (i + 1) % N; cv.notify_all()
        bar.wait()
ts = [threading.Thread(target=work, args=(i,)) for i in range(N)]
for t in ts: t.start()
for t in ts: t.join()
print("joined", threading.active_count())
PY
chmod 644 "$W/th.py"
# moved_run NAME GATE CMD...: CMD natively (gate open), then under mosrun moved 1 -> 2 -> home
moved_run() {
    local name=$1 gate=$2 run job; shift 2
    touch "$gate.nat"
    (cd "$W" && exec "${AS_USER[@]}" "$@" "$gate.nat" < /dev/null > "$W/$name.nat" 2>&1) || bad "$name: native run failed"
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$@" "$gate" < /dev/null \
        > "$W/$name.mig" 2> "$W/$name.err") &
    run=$!
    job=$(started $run "$(basename "$1")")
    wait_until 20 eval '[ $(threads_of $job) -ge 4 ] && [ -s "$W/$name.mig" ]'
    move "$job" "$N2" "" "$name: moved to node 2 with $(threads_of "$job") threads"
    move "$job" home "$N1" "$name: and home"
    touch "$gate"
    wait $run || bad "$name: exit status $? ($(cat "$W/$name.err"))"
    same "$name moved 1 -> 2 -> home" "$W/$name.nat" "$W/$name.mig"
}
moved_run python3 "$W/g.py" /usr/bin/python3 "$W/th.py" 300
if [ -x "$B/mosomp" ]; then
    OMP_NUM_THREADS=4 OMP_WAIT_POLICY=passive moved_run openmp "$W/g.omp" "$B/mosomp" 300
else
    bad "mosomp was not built (no OpenMP for C)"
fi

# 5. POV-Ray (not written here; 4 threads and more with +WT2) rendering Debian's example scene
#    moved 1 -> 2 -> 3 -> home mid-render: the same pixels as a native render (PPM after its
#    header, which holds the render date)
SCENE=/usr/share/doc/povray/examples/advanced/biscuit.pov
if command -v povray > /dev/null && [ -f "$SCENE" ]; then
    POV=(povray "+I$SCENE" +W1024 +H768 +A0.3 -D +WT2 -GA +FP)
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" env HOME="$W" "${POV[@]}" "+O$W/pov.nat.ppm" \
        < /dev/null > "$W/pov.nat.log" 2>&1) || bad "povray: native render failed"
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" env HOME="$W" "$B/mosrun" "${POV[@]}" \
        "+O$W/pov.mig.ppm" < /dev/null > "$W/pov.mig.log" 2>&1) &
    run=$!
    job=$(started "$run" povray)
    cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
    wait_until 60 eval '[ "$(cpu_ticks "$job")" -ge 50 ]'
    move "$job" "$N2" "" "povray: moved to node 2 mid-render with $(threads_of "$job") threads"
    move "$job" "$N3" "" "povray: on to node 3"
    move "$job" home "$N1" "povray: and home"
    wait $run || bad "povray: exit status $? ($(tail -c 300 "$W/pov.mig.log"))"
    px=$((1024 * 768 * 3))
    cmp -s <(tail -c $px "$W/pov.nat.ppm") <(tail -c $px "$W/pov.mig.ppm") \
        && ok "povray moved 1 -> 2 -> 3 -> home: every pixel as in the native render" \
        || bad "povray: the pixels differ from the native render"
else
    bad "povray or its example scenes are missing (cmake/debian-packages.txt lists them)"
fi

for i in 1 2 3; do grep -E "ERROR|error" "$W/mosd$i.log" | head -3; done
lab_result
