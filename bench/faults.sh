#!/bin/bash
# mosbench faults: a fault campaign. N migrations of checksumming jobs (mosjob, 48 MiB of
# ballast it checks at the end) in a 3-node lab, each hit at a random moment of the move by one
# fault, in turn:
#   none           no fault (the control)
#   target-mosd    kill -9 of the target's mosd
#   target-child   kill -9 of the target mosd's children (the supervisor the guest is restored under)
#   source-child   kill -9 of the source mosd's children (the worker that freezes and sends)
#   target-node    everything in the target's namespace killed (the node dies)
#   link-cut       the target's link goes down for 2 s
#   mosrun         kill -9 of the job's mosrun at home (the job must end everywhere with it)
#   source-mosd    kill -9 of the source's mosd, for a move from node 2 to node 3
#   source-commit  kill -9 of the source's worker right after it said COMMIT (the copy may run
#                  by then): a move from home, where the job's deputy decides (the original
#                  goes on, the copy loses its link home)
#   away-commit    the same for a move from node 2 to node 3, where the original dies with
#                  the worker (the copy goes on)
# (the commit kinds start the source's mosd with MOS_TEST_STOP_AFTER_COMMIT: its worker stops
# itself right after COMMIT, and is killed there)
# Killed daemons are restarted after each trial. Every trial ends in one of:
#   ok          the job finished with exit 7 and exactly the output of an undisturbed run, or
#               (mosrun killed) no copy of it runs anywhere
#   lost        the job ended otherwise, or was still running 120 s later
#   duplicated  a second copy of it ran (lines twice in its output, or a copy alive somewhere
#               after its mosrun ended)
#   wrong       exit 7 but output differing from the undisturbed run
# Last line: result faults migrations=N lost=L duplicated=D wrong=W, after a line per fault kind.
#   mosbench faults [--migrations N] [--kinds k1,k2,...] [--seed S]
set -u
N=24 SEED=$$ KINDS="none,target-mosd,target-child,source-child,target-node,link-cut,mosrun,source-mosd,source-commit,away-commit"
while [ $# -gt 0 ]; do
    case $1 in
    --migrations) N=$2; shift 2 ;;
    --kinds) KINDS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --nodes) [ "$2" = 3 ] || { echo "mosbench faults: runs on 3 nodes" >&2; exit 2; }; shift 2 ;;
    *) echo "mosbench faults: bad argument '$1'" >&2; exit 2 ;;
    esac
done
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] || { echo "mosbench faults: --migrations takes a whole number >= 1" >&2; exit 2; }
[[ $SEED =~ ^[0-9]+$ ]] || { echo "mosbench faults: --seed takes a whole number" >&2; exit 2; }
IFS=, read -r -a KIND <<<"$KINDS"
for k in "${KIND[@]}"; do
    case $k in none|target-mosd|target-child|source-child|target-node|link-cut|mosrun|source-mosd|source-commit|away-commit) ;;
    *) echo "mosbench faults: unknown fault kind '$k'" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "mosbench faults: must run as root (it builds a lab)" >&2; exit 1; }
BIN=${MOS_BIN:-$(dirname "$(readlink -f "$0")")}
LAB=${MOS_LAB:-$(dirname "$(readlink -f "$0")")/mos-lab}
[ -x "$LAB" ] || LAB=$(dirname "$(readlink -f "$0")")/../tests/lab/mos-lab
[ -x "$BIN/mosjob" ] && [ -x "$BIN/mosd" ] && [ -x "$LAB" ] || {
    echo "mosbench faults: cannot find mosd, mosjob or mos-lab (set MOS_BIN and MOS_LAB)" >&2; exit 1; }
export MOS_LAB_NAME=mf$$
W=$(mktemp -d /tmp/mosbench-faults.XXXXXX)
chmod 777 "$W"
# MOS_BENCH_LOGS=DIR keeps the mosd logs and the outputs of the trials that went wrong there
# stderr goes quiet first: bash reports each daemon it kills here ("Killed"), after the result
# line that must stay last
trap 'exec 2>/dev/null; jobs -p | xargs -r kill -9; wait; "$LAB" down >/dev/null; [ -n "${MOS_BENCH_LOGS:-}" ] && mkdir -p "$MOS_BENCH_LOGS" && cp -r "$W"/. "$MOS_BENCH_LOGS"/; rm -rf "$W"' EXIT
AS_USER=(setpriv --reuid=65534 --regid=65534 --clear-groups)
RANDOM=$SEED
STEPS=40 STEP_MS=40 MIB=48

"$LAB" up 3 --set balance=0 >/dev/null || exit 1
declare -A MOSD
start_mosd() { # I [VAR=VALUE...]: mosd on node I, with that environment
    local i=$1; shift
    "$LAB" exec --uncapped "$i" env "$@" "$BIN/mosd" >> "$W/mosd$i.log" 2>&1 & MOSD[$i]=$!
}
# MOSD_ENV[I]: the environment node I's mosd must run with (MOSD_HAS[I]: the one it runs with)
declare -A MOSD_ENV MOSD_HAS
restart_mosd() { # I [VAR=VALUE...]
    local i=$1; shift
    kill -9 "${MOSD[$i]}" 2>/dev/null; wait "${MOSD[$i]}" 2>/dev/null; rm -f "$(sock "$i")"
    start_mosd "$i" "$@"; MOSD_HAS[$i]="$*"
}
sock() { echo "/run/mos-lab/$MOS_LAB_NAME/mosd-${MOS_LAB_NAME}$1.sock"; }
wait_until() { # SECONDS CMD...: until CMD succeeds (polled every 50 ms)
    local i; for ((i = 0; i < $1 * 20; i++)); do "${@:2}" && return 0; sleep 0.05; done; "${@:2}"
}
mosd_up() { kill -0 "${MOSD[$1]}" 2>/dev/null && [ -S "$(sock "$1")" ]; }
ensure_mosd() { # restart what a fault killed, and wait until it serves
    local i
    for i in 1 2 3; do
        if [ "${MOSD_HAS[$i]:-}" != "${MOSD_ENV[$i]:-}" ]; then
            # shellcheck disable=SC2086 # the environment is words
            restart_mosd "$i" ${MOSD_ENV[$i]:-}
        elif ! kill -0 "${MOSD[$i]}" 2>/dev/null; then
            wait "${MOSD[$i]}" 2>/dev/null; rm -f "$(sock "$i")"
            # shellcheck disable=SC2086
            start_mosd "$i" ${MOSD_ENV[$i]:-}
        fi
        wait_until 20 mosd_up "$i" || { echo "mosbench faults: mosd on node $i does not come up" >&2; exit 1; }
    done
}
for i in 1 2 3; do start_mosd "$i"; done
ensure_mosd
# every node's link at 200 Mbit/s: a move of the job (about 50 MiB) lasts about 2 s, so that a
# fault at a random moment of its first second strikes while the image streams
for i in 1 2 3; do "$LAB" exec "$i" tc qdisc add dev eth0 root tbf rate 200mbit burst 64kb latency 400ms; done
N1=${MOS_LAB_NAME}1 N2=${MOS_LAB_NAME}2 N3=${MOS_LAB_NAME}3

# the reference: the job undisturbed
"$BIN/mosjob" $STEPS 0 "$W/ref.a" "$W/ref.b" $MIB < /dev/null > "$W/ref.out"

registered() { "$LAB" exec 1 "$BIN/mosps" 2>/dev/null | awk -v p="$1" 'NR > 1 && $1 == p { f = 1 } END { exit !f }'; }
where_is() { "$LAB" exec 1 "$BIN/mosps" 2>/dev/null | awk -v p="$1" 'NR > 1 && $1 == p { print $3 }'; }
is_at() { [ "$(where_is "$1")" = "$2" ]; }
job_child() { local j; j=$(pgrep -P "$1" -x mosjob | head -1); [ -n "$j" ] && registered "$j" && echo "$j"; }
# the user's processes left in the lab (one trial at a time: after its mosrun ends, none)
user_pids() { local i; for i in 1 2 3; do ip netns pids "${MOS_LAB_NAME}$i"; done | xargs -r ps -o pid= -o uid= -p 2>/dev/null | awk '$2 == 65534 { print $1 }'; }
copies() { user_pids | wc -l; }
netns_of() { echo "${MOS_LAB_NAME}$1"; }

fault() { # KIND SOURCE TARGET RUN: inject the fault
    local kind=$1 src=$2 dst=$3 run=$4
    case $kind in
    target-mosd) kill -9 "${MOSD[$dst]}"; wait "${MOSD[$dst]}" 2>/dev/null ;;
    source-mosd) kill -9 "${MOSD[$src]}"; wait "${MOSD[$src]}" 2>/dev/null ;;
    target-child) pkill -9 -P "${MOSD[$dst]}" ;;
    source-child) pkill -9 -P "${MOSD[$src]}" ;;
    target-node) ip netns pids "$(netns_of "$dst")" | xargs -r kill -9 ;;
    link-cut) "$LAB" exec "$dst" ip link set dev eth0 down ;;
    mosrun) kill -9 "$run" ;;
    source-commit|away-commit) # its worker, once it stopped itself after COMMIT
        if wait_until 30 worker_stopped "$src"; then pkill -9 -P "${MOSD[$src]}"; else missed=1; fi ;;
    esac
}
worker_stopped() { local p; for p in $(pgrep -P "${MOSD[$1]}"); do [ "$(awk '/^State:/ { print $2 }' "/proc/$p/status" 2>/dev/null)" = T ] && return 0; done; return 1; }

declare -A K_OK K_LOST K_DUP K_WRONG
lost=0 dup=0 wrong=0
for ((t = 1; t <= N; t++)); do
    kind=${KIND[$(( (t - 1) % ${#KIND[@]} ))]} missed=0
    MOSD_ENV=()
    case $kind in
    source-commit) MOSD_ENV[1]=MOS_TEST_STOP_AFTER_COMMIT=1 ;;
    away-commit) MOSD_ENV[2]=MOS_TEST_STOP_AFTER_COMMIT=1 ;;
    esac
    ensure_mosd
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$BIN/mosrun" "$BIN/mosjob" $STEPS $STEP_MS \
        "$W/t$t.a" "$W/t$t.b" $MIB < /dev/null > "$W/t$t.out" 2> "$W/t$t.err") &
    run=$!
    job=$(wait_until 30 job_child $run) || job=
    src=1 dst=2
    if [ -n "$job" ] && { [ "$kind" = source-mosd ] || [ "$kind" = away-commit ]; }; then # a move between two away nodes
        "$LAB" exec 1 "${AS_USER[@]}" "$BIN/mosmigrate" "$job" "$N2" > /dev/null 2>&1
        src=2 dst=3
    fi
    if [ -n "$job" ]; then
        target=$(netns_of $dst)
        ("$LAB" exec 1 "${AS_USER[@]}" "$BIN/mosmigrate" "$job" "$target" > "$W/t$t.mig" 2>&1) &
        mig=$!
        # the fault strikes between 0 and 1 s into the move (the commit kinds: at the commit)
        case $kind in *-commit) ;; *) sleep "0.$(printf '%03d' $(( RANDOM % 1000 )))" ;; esac
        fault "$kind" $src $dst $run
        wait_until 60 eval '! kill -0 $mig 2>/dev/null' || kill -9 $mig 2>/dev/null
        wait $mig 2>/dev/null # (bash reports a killed job on stderr unless it is waited for quietly)
        [ "$kind" = link-cut ] && { sleep 2; "$LAB" exec "$dst" ip link set dev eth0 up; }
    fi
    wait_until 120 eval '! kill -0 $run 2>/dev/null'
    if kill -0 $run 2>/dev/null; then
        verdict=lost why="still running after 120 s"
        kill -9 $run; user_pids | xargs -r kill -9
    else
        wait $run 2>/dev/null; rc=$?
        # a copy that outlives its mosrun: give the cluster 10 s to end it
        wait_until 10 eval '[ "$(copies)" = 0 ]'
        left=$(copies)
        lines=$(grep -c '^step ' "$W/t$t.out")
        if [ -z "$job" ]; then
            verdict=lost why="never registered: $(head -c 200 "$W/t$t.err")"
        elif [ "$missed" = 1 ]; then # the case was not tried: no verdict on it is right
            verdict=wrong why="the fault never struck (no worker stopped after COMMIT)"
        elif [ "$left" != 0 ] || [ "$lines" -gt $STEPS ]; then
            verdict=duplicated why="$left copies left, $lines step lines"
        elif [ "$kind" = mosrun ]; then
            verdict=ok why="ended with its mosrun"
        elif [ $rc = 7 ] && cmp -s "$W/t$t.out" "$W/ref.out" && cmp -s "$W/t$t.a" "$W/ref.a"; then
            verdict=ok why=""
        elif [ $rc = 7 ]; then
            verdict=wrong why="$(diff "$W/t$t.out" "$W/ref.out" | head -3 | tr '\n' ' ') $(diff "$W/t$t.a" "$W/ref.a" | head -3 | tr '\n' ' ')"
        else
            verdict=lost why="exit $rc: $(tail -1 "$W/t$t.err")"
        fi
    fi
    case $verdict in
    ok) K_OK[$kind]=$(( ${K_OK[$kind]:-0} + 1 )) ;;
    lost) K_LOST[$kind]=$(( ${K_LOST[$kind]:-0} + 1 )); lost=$((lost + 1)) ;;
    duplicated) K_DUP[$kind]=$(( ${K_DUP[$kind]:-0} + 1 )); dup=$((dup + 1)) ;;
    wrong) K_WRONG[$kind]=$(( ${K_WRONG[$kind]:-0} + 1 )); wrong=$((wrong + 1)) ;;
    esac
    [ "$verdict" = ok ] || echo "trial $t ($kind, $src -> $dst): $verdict: $why; mosmigrate: $(tr '\n' ' ' < "$W/t$t.mig" 2>/dev/null)" >&2
    [ "$verdict" = ok ] && rm -f "$W/t$t.a" "$W/t$t.b"
done
printf "%-14s %5s %5s %10s %6s\n" kind ok lost duplicated wrong
for k in "${KIND[@]}"; do
    printf "%-14s %5d %5d %10d %6d\n" "$k" "${K_OK[$k]:-0}" "${K_LOST[$k]:-0}" "${K_DUP[$k]:-0}" "${K_WRONG[$k]:-0}"
done
echo "result faults migrations=$N lost=$lost duplicated=$dup wrong=$wrong"
