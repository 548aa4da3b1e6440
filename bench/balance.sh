#!/bin/bash
# mosbench balance: the makespan of CPU-bound jobs started on one node of a lab cluster, with
# automatic balancing, without it (mosrun -L: never migrate), and the ideal (total work over
# total CPU), in one run; the moves that happened and the ping-pongs among them (a job
# arriving on a node it left less than PINGPONG_S seconds before).
#   mosbench balance [--nodes N] [--cpus-per-node F[,F...]] [--jobs J] [--steps S]
#                    [--work-per-step K] [--mem-per-node MIB[,MIB...] --job-mib M] [--watch]
# A job is S steps of K units of computation (about 0.6 ms each here), each step followed by 2
# or 3 writes, which are forwarded calls once the job is away: K sets how chatty the jobs are
# (the default, 20 units and 125 steps, is a CPU-bound job of about 200 calls per CPU-second;
# --work-per-step 1 --steps 2500 the same CPU with 20 times the calls).
# Memory: --mem-per-node caps each node's memory (mos-lab --mem) and --job-mib makes each job
# grow to M MiB step by step; jobs that together outgrow node 1 must be ushered before the
# kernel kills them: the runs count the jobs killed (oom_killed=, baseline_oom_killed=).
# (a list of CPU caps makes the nodes unequal: node I gets the I-th value, the last one the rest)
set -u
NODES=4 CPUS=0.5 JOBS=8 STEPS=125 WORK=20 WATCH=0 MEM="" JOB_MIB=0
while [ $# -gt 0 ]; do
    case $1 in
    --nodes) NODES=$2; shift 2 ;;
    --cpus-per-node) CPUS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --work-per-step) WORK=$2; shift 2 ;;
    --mem-per-node) MEM=$2; shift 2 ;;
    --job-mib) JOB_MIB=$2; shift 2 ;;
    --watch) WATCH=1; shift ;;
    *) echo "mosbench balance: bad argument '$1'" >&2; exit 2 ;;
    esac
done
[[ $JOB_MIB =~ ^[0-9]+$ ]] || { echo "mosbench balance: --job-mib takes MiB, a whole number" >&2; exit 2; }
for v in "$NODES" "$JOBS" "$STEPS" "$WORK"; do
    [[ $v =~ ^[0-9]+$ ]] && [ "$v" -ge 1 ] || { echo "mosbench balance: counts must be whole numbers >= 1" >&2; exit 2; }
done
[ "$NODES" -ge 2 ] || { echo "mosbench balance: needs at least 2 nodes" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "mosbench balance: must run as root (it builds a lab)" >&2; exit 1; }
BIN=${MOS_BIN:-$(dirname "$(readlink -f "$0")")}
LAB=${MOS_LAB:-$(dirname "$(readlink -f "$0")")/mos-lab}
[ -x "$LAB" ] || LAB=$(dirname "$(readlink -f "$0")")/../tests/lab/mos-lab
[ -x "$BIN/mosjob" ] && [ -x "$BIN/mosd" ] && [ -x "$LAB" ] || {
    echo "mosbench balance: cannot find mosd, mosjob or mos-lab (set MOS_BIN and MOS_LAB)" >&2; exit 1; }
export MOS_LAB_NAME=mb$$ MOSJOB_WORK=$WORK
W=$(mktemp -d /tmp/mosbench-balance.XXXXXX)
chmod 777 "$W"
# MOS_BENCH_LOGS=DIR keeps the mosd logs there, for a look at the balancer's decisions
trap '"$LAB" down >/dev/null 2>&1; [ -n "${MOS_BENCH_LOGS:-}" ] && cp "$W"/mosd*.log "$MOS_BENCH_LOGS"/; rm -rf "$W"' EXIT
AS_USER=(setpriv --reuid=65534 --regid=65534 --clear-groups)

MEM_UP=()
[ -n "$MEM" ] && MEM_UP=(--mem "$MEM")
"$LAB" up "$NODES" --cpus "$CPUS" "${MEM_UP[@]}" >/dev/null || exit 1
# a job: STEPS steps, and JOB_MIB of memory filled as it goes
JOB_ARGS=("$STEPS" 0 /dev/null /dev/null)
[ "$JOB_MIB" -gt 0 ] && { JOB_ARGS+=("$JOB_MIB"); export MOSJOB_GROW=1; }
# the CPU the lab's caps give all nodes together
TOTAL_CPU=$(awk -v n="$NODES" -v l="$CPUS" 'BEGIN { k = split(l, c, ","); for (i = 1; i <= n; i++) t += c[i <= k ? i : k]; printf "%.4g", t }')
# each log line stamped with the time it was read (bash's clock: no process per line), to put
# the moves of all nodes in one order
stamp() { while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }
for i in $(seq "$NODES"); do ("$LAB" exec --uncapped "$i" "$BIN/mosd" 2>&1 | stamp > "$W/mosd$i.log") & disown; done
sleep 2

# One job's CPU time at full speed, the unit of work.
TIMEFORMAT=%U+%S
one=$( { time "$BIN/mosjob" "${JOB_ARGS[@]}" < /dev/null > /dev/null; } 2>&1 )
work=$(awk -v t="$one" 'BEGIN { split(t, a, "+"); printf "%.3f", a[1] + a[2] }')
ideal=$(awk -v w="$work" -v j="$JOBS" -v t="$TOTAL_CPU" 'BEGIN { printf "%.2f", w * j / t }')

# What each node really delivers on this (shared) host: one job per node, all at once, never
# moved; a node's rate is the work over its wall time. The ideal on these rates does not count
# a busy host against the balancer. Measured before the runs and after them, the mean.
node_rates() { # node_rates: prints one rate per node (CPU-s of work per second)
    local i
    for i in $(seq "$NODES"); do
        ( t0=$EPOCHREALTIME
          "$LAB" exec "$i" "${AS_USER[@]}" "$BIN/mosrun" -L "$BIN/mosjob" "${JOB_ARGS[@]}" \
              < /dev/null > /dev/null 2>&1
          awk -v w="$work" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f\n", w / (b - a) }' ) &
    done
    wait
}
rates_before=$(node_rates | awk '{ s += $1 } END { printf "%.4f", s }')

run_all() { # run_all FLAG NAME: the makespan of JOBS jobs started together on node 1; the
            # jobs killed (status 137: the memory cap) in $W/killed.NAME
    local t0 t1 pids=() p killed=0
    t0=$(date +%s.%N)
    for j in $(seq "$JOBS"); do
        "$LAB" exec 1 "${AS_USER[@]}" "$BIN/mosrun" $1 "$BIN/mosjob" "${JOB_ARGS[@]}" \
            < /dev/null > "$W/job$j.out" 2>&1 &
        pids+=($!)
    done
    if [ "$WATCH" = 1 ]; then
        while kill -0 "${pids[0]}" 2>/dev/null || jobs -r | grep -q .; do
            sleep 2
            jobs -r | grep -q . || break
            echo "--- $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s"
            "$LAB" exec 1 "$BIN/mosmon" --once | tail -n +2
        done >&2
    fi
    for p in "${pids[@]}"; do wait "$p"; [ $? = 137 ] && killed=$((killed + 1)); done
    t1=$(date +%s.%N)
    echo "$killed" > "$W/killed.$2"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
[ "$WATCH" = 1 ] && echo "with balancing: $JOBS jobs started on node 1" >&2
balanced=$(run_all "" balanced)
finished=0
for j in $(seq "$JOBS"); do grep -q "^step $STEPS " "$W/job$j.out" && finished=$((finished + 1)); done
[ $((finished + $(cat "$W/killed.balanced"))) = "$JOBS" ] || { echo "mosbench balance: $((JOBS - finished)) job(s) did not finish" >&2; exit 1; }
ordered=$(cat "$W"/mosd*.log | grep -c "balance: moving")
# Moves that happened, in time order over all nodes: a job arriving on a node ("guest job J
# from HOME runs here"), or back home ("job J (pid P) is home, native again", on node 1, where
# the jobs start). A ping-pong is a job arriving on a node it left less than PINGPONG_S (10 s,
# over mosd's 3 s residence) before; returns counts every arrival where it had been.
PINGPONG_S=${PINGPONG_S:-10}
for i in $(seq "$NODES"); do
    sed -n -e "s/^\([0-9.]*\) .*guest job \([0-9]*\) from .* runs here.*/\1 \2 $i/p" \
        -e "s/^\([0-9.]*\) .*: job \([0-9]*\) (pid [0-9]*) is home, native again.*/\1 \2 $i/p" "$W/mosd$i.log"
done | sort -n > "$W/arrivals"
read -r moves returns pingpong < <(awk -v w="$PINGPONG_S" '
    { j = $2; at = (j in cur) ? cur[j] : 1
      if ((j, $3) in left) { ret++; if ($1 - left[j, $3] < w) pp++ }
      left[j, at] = $1; cur[j] = $3; n++ }
    END { print n + 0, ret + 0, pp + 0 }' "$W/arrivals")
[ "$WATCH" = 1 ] && echo "without balancing (mosrun -L): the same $JOBS jobs stay on node 1" >&2
baseline=$(run_all -L baseline)
rates_after=$(node_rates | awk '{ s += $1 } END { printf "%.4f", s }')
ideal_real=$(awk -v w="$work" -v j="$JOBS" -v a="$rates_before" -v b="$rates_after" \
    'BEGIN { printf "%.2f", w * j / ((a + b) / 2) }')
echo "nodes $NODES, CPUs per node $CPUS ($TOTAL_CPU in all), $JOBS jobs of $work CPU-s each ($STEPS steps of $WORK units, $(awk -v s="$STEPS" -v w="$work" 'BEGIN { printf "%.0f", 2.5 * s / w }') forwarded calls per CPU-s away from home)"
echo "makespan with balancing:        $balanced s ($moves moves, $ordered ordered, $returns returns to a node left before, $pingpong within $PINGPONG_S s)"
[ "$JOB_MIB" -gt 0 ] && echo "memory: nodes capped at $MEM MiB, jobs growing to $JOB_MIB MiB; killed at a node's limit: $(cat "$W/killed.balanced") with balancing, $(cat "$W/killed.baseline") without"
echo "makespan without (mosrun -L):   $baseline s"
echo "ideal (work / total CPU):       $ideal s"
echo "ideal on measured node rates:   $ideal_real s (the nodes together gave $rates_before then $rates_after CPU of the quota's $TOTAL_CPU)"
awk -v m="$balanced" -v b="$baseline" -v i="$ideal" -v r="$ideal_real" -v mv="$moves" -v j="$JOBS" -v rt="$returns" -v pp="$pingpong" \
    -v ok="$(cat "$W/killed.balanced")" -v bk="$(cat "$W/killed.baseline")" \
    'BEGIN { printf "result balance makespan_s=%.2f baseline_s=%.2f ideal_s=%.2f speedup=%.2f efficiency=%.2f ideal_real_s=%.2f efficiency_real=%.2f moves_per_job=%.2f returns=%d moves=%d pingpong=%d oom_killed=%d baseline_oom_killed=%d\n", m, b, i, b / m, i / m, r, r / m, mv / j, rt, mv, pp, ok, bk }'
