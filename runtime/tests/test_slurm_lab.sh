#!/bin/bash
# Slurm with mos: a real slurmctld (on node 1) and one slurmd on each of nodes 1-3 of a 4-node
# lab, munge (one munged on the host, its own key and socket under the test's directory: the
# host's munge is untouched), slurm.conf and plugstack.conf (mos_spank.so) written here, jobs
# as a plain user. `srun -N3 --mos` runs a task on each node under mosrun -N (the job's
# nodes): a task moved between the job's nodes finishes with the output of a native run, a
# move to node 4 (a mos node outside the allocation) is refused with the reason, and scancel
# mid-run leaves no process of the user on any node. Everything stops on exit (trap).
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init slurm

SPANK=$(dirname "$B")/lib/mos_spank.so
for p in slurmctld slurmd srun squeue scancel munged; do
    command -v $p > /dev/null || { echo "FAIL: $p is missing (slurm-wlm and munge are in cmake/debian-packages.txt)"; exit 1; }
done
[ -f "$SPANK" ] || { echo "FAIL: mos_spank.so was not built (libslurm-dev, MOS_SLURM=ON)"; exit 1; }
# munged refuses a socket or key in a directory others may write: the daemons' own, root's
S=$(mktemp -d /tmp/mos-slurmd.XXXXXX)
chmod 755 "$S"
MUNGED=
slurm_cleanup() {
    local i
    for i in 1 2 3; do
        [ -f "$S/slurmd.${MOS_LAB_NAME}$i.pid" ] && kill "$(cat "$S/slurmd.${MOS_LAB_NAME}$i.pid")" 2>/dev/null
    done
    [ -f "$S/slurmctld.pid" ] && kill "$(cat "$S/slurmctld.pid")" 2>/dev/null
    [ -f "$S/priv/munged.pid" ] && kill "$(cat "$S/priv/munged.pid")" 2>/dev/null
    sleep 0.5
    # whatever is left in this lab's namespaces (slurmstepd of a job a failure left running)
    for i in 1 2 3 4; do ip netns pids "${MOS_LAB_NAME}$i" 2>/dev/null; done | xargs -r kill -9 2>/dev/null
    lab_cleanup
    [ -n "${MOS_TEST_KEEP:-}" ] && echo "kept $S" || rm -rf "$S"
}
trap slurm_cleanup EXIT

lab_up 4 --set balance=0
for i in 1 2 3 4; do "$LAB" exec --uncapped "$i" "$B/mosd" >> "$W/mosd$i.log" 2>&1 & done
wait_mosd 1 2 3 4
N4=${MOS_LAB_NAME}4
MOSCONF=/run/mos-lab/$MOS_LAB_NAME/mos.conf

# ---- munge
mkdir -m 700 "$S/priv"
dd if=/dev/urandom of="$S/priv/munge.key" bs=1024 count=1 status=none
chmod 600 "$S/priv/munge.key"
munged --socket="$S/munge.sock" --key-file="$S/priv/munge.key" --pid-file="$S/priv/munged.pid" \
    --log-file="$S/priv/munged.log" --seed-file="$S/priv/munged.seed" \
    || { echo "FAIL: munged did not start: $(cat "$S/priv/munged.log")"; exit 1; }

# ---- slurm.conf, plugstack.conf
CPUS=$(nproc)
{
    echo "ClusterName=mos$$"
    echo "SlurmctldHost=$N1(10.77.0.1)"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "AuthInfo=socket=$S/munge.sock"
    echo "CredType=cred/munge"
    echo "StateSaveLocation=$S/state"
    echo "SlurmdSpoolDir=$S/spool.%n"
    echo "SlurmctldPidFile=$S/slurmctld.pid"
    echo "SlurmctldLogFile=$S/slurmctld.log"
    echo "SlurmdLogFile=$S/slurmd.%n.log"
    echo "SlurmdPidFile=$S/slurmd.%n.pid"
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "AccountingStorageType=accounting_storage/none"
    echo "JobCompType=jobcomp/none"
    echo "MpiDefault=none"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_Core"
    echo "ReturnToService=2"
    echo "SlurmdTimeout=60"
    echo "KillWait=5"
    echo "PlugStackConfig=$S/plugstack.conf"
    for i in 1 2 3; do
        echo "NodeName=${MOS_LAB_NAME}$i NodeAddr=10.77.0.$i CPUs=$CPUS State=UNKNOWN"
    done
    echo "PartitionName=lab Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4"
} > "$S/slurm.conf"
echo "required $SPANK mosrun=$B/mosrun config=$MOSCONF" > "$S/plugstack.conf"
chmod 644 "$S/slurm.conf" "$S/plugstack.conf"
mkdir -p "$S/state"
export SLURM_CONF=$S/slurm.conf

# ---- the daemons
"$LAB" exec --uncapped 1 slurmctld -f "$S/slurm.conf" -i >> "$W/slurmctld.out" 2>&1
for i in 1 2 3; do
    mkdir -p "$S/spool.${MOS_LAB_NAME}$i"
    "$LAB" exec --uncapped "$i" slurmd -f "$S/slurm.conf" >> "$W/slurmd$i.out" 2>&1
done
nodes_idle() { [ "$(on 1 sinfo -h -o '%D %t' 2>/dev/null | awk '$2 == "idle" { n += $1 } END { print n+0 }')" = 3 ]; }
if wait_until 60 nodes_idle; then
    ok "slurmctld and 3 slurmd: 3 nodes idle"
else
    echo "FAIL: the Slurm nodes are not idle: $(on 1 sinfo 2>&1 | tr '\n' ' ') $(tail -5 "$S/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
    echo "$passes passed, $((fails + 1)) failed"; exit 1
fi

# ---- the job: mosjob per task, its files by task number (as the plain user, in W)
cat > "$W/prog" <<PROG
#!/bin/sh
exec $B/mosjob \$1 \$2 $W/a.\$SLURM_PROCID $W/b.\$SLURM_PROCID
PROG
chmod 755 "$W/prog"
"$B/mosjob" 40 1 "$W/native.a" "$W/native.b" < /dev/null > "$W/native.out"
usrun() { (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" env HOME="$W" SLURM_CONF="$SLURM_CONF" "$@"); }
user_pids() { # the user's processes on the lab's nodes
    local i; for i in 1 2 3 4; do ip netns pids "${MOS_LAB_NAME}$i"; done \
        | xargs -r ps -o pid= -o uid= -o comm= -p 2>/dev/null | awk '$2 == 65534 { print $1, $3 }'
}
no_user_pids() { [ -z "$(user_pids)" ]; }

# 1. srun -N3 --mos: one task per node, each under mosrun with the job's nodes
out=$(usrun timeout 120 srun -N3 --mos sh -c 'echo "$SLURM_PROCID $(hostname)"; ps -o args= -p $PPID' < /dev/null 2> "$W/srun1.err")
rc=$?
hosts=$(grep -E '^[0-9] ' <<<"$out" | awk '{ print $2 }' | sort | tr '\n' ' ')
parents=$(grep -c -- "mosrun --config $MOSCONF -N $N1,$N2,$N3 -- sh -c" <<<"$out")
[ $rc = 0 ] && [ "$hosts" = "$N1 $N2 $N3 " ] && [ "$parents" = 3 ] \
    && ok "srun -N3 --mos: a task on each node, each the child of mosrun -N $N1,$N2,$N3" \
    || bad "srun --mos: rc $rc hosts '$hosts' parents $parents: $(tr '\n' ' ' <<<"$out") $(head -c 400 "$W/srun1.err")"

for m in lock:-L best:-b; do
    out=$(usrun timeout 120 srun -N3 --mos=${m%%:*} sh -c 'ps -o args= -p $PPID' < /dev/null 2> "$W/srun1.err")
    n=$(grep -c -- "mosrun --config $MOSCONF -N $N1,$N2,$N3 ${m#*:} -- sh -c" <<<"$out")
    [ "$n" = 3 ] && ok "srun --mos=${m%%:*}: each task under mosrun ${m#*:}" \
        || bad "--mos=${m%%:*}: $(tr '\n' ' ' <<<"$out") $(head -c 300 "$W/srun1.err")"
done
out=$(usrun timeout 120 srun -N1 --mos=fast true < /dev/null 2>&1); rc=$?
[ $rc != 0 ] && grep -q -- "--mos=fast: give best, lock or nothing" <<<"$out" \
    && ok "srun --mos=fast: refused, saying what --mos takes" || bad "--mos=fast: rc $rc $out"

# 2. a longer run: the task of node 2 is moved to node 3 (within), the task of node 1 may not go
#    to node 4 (outside); every task prints what a native run prints
usrun timeout 300 srun -N3 --mos ./prog 40 400 < /dev/null > "$W/run2.out" 2> "$W/run2.err" &
run=$!
task_on() { # task_on I: the pid of the job's mosjob registered on node I
    on "$1" "$B/mosps" --json 2>/dev/null | python3 -c '
import json, sys
for j in json.load(sys.stdin):
    if "prog" in j["cmd"] and j["from"] == j["where"]: print(j["pid"]); break'
}
wait_until 60 eval '[ -n "$(task_on 2)" ] && [ -n "$(task_on 1)" ]' || bad "the tasks did not register: $(tail -3 "$W/run2.err")"
p2=$(task_on 2) p1=$(task_on 1)
out=$(on 1 "$B/mosmigrate" "$p1" "$N4" 2>&1); rc=$?
[ $rc = 1 ] && [ "$(wc -l <<<"$out")" = 1 ] \
    && grep -q "may run only on its nodes (mosrun -N $N1,$N2,$N3) and home: $N4 is not one of them" <<<"$out" \
    && ok "a move to node 4, outside the allocation, is refused in one line: $out" \
    || bad "move outside: rc $rc $out"
out=$(on 2 "$B/mosmigrate" "$p2" "$N3" 2>&1); rc=$?
[ $rc = 0 ] && grep -q "now runs on $N3" <<<"$out" && ok "the task of node 2 moved to node 3 (a node of the job)" \
    || bad "move within the job: rc $rc $out"
wait $run; rc=$?
steps=$(grep -c '^step ' "$W/run2.out")
same=0
for t in 0 1 2; do cmp -s "$W/a.$t" "$W/native.a" && same=$((same + 1)); done
want=$(grep '^step ' "$W/native.out" | sort | uniq -c | awk '{ print $1 * 3, $2, $3, $4 }' | sort | md5sum)
got=$(grep '^step ' "$W/run2.out" | sort | uniq -c | awk '{ print $1, $2, $3, $4 }' | sort | md5sum)
[ $rc = 7 ] && [ "$steps" = 120 ] && [ "$same" = 3 ] && [ "$want" = "$got" ] \
    && ok "srun --mos with a moved task: 3 x 40 steps as a native run prints them, each task's file the same, exit 7" \
    || bad "the moved run: rc $rc steps $steps same files $same $(tail -3 "$W/run2.err" | tr '\n' ' ')"

# 3. scancel mid-run, with one task away on another node: nothing of the user's stays anywhere
usrun timeout 300 srun -N3 --mos -J mosscancel ./prog 400 400 < /dev/null > "$W/run3.out" 2> "$W/run3.err" &
run=$!
wait_until 60 eval '[ -n "$(task_on 3)" ]' || bad "the tasks did not register: $(tail -3 "$W/run3.err")"
out=$(on 3 "$B/mosmigrate" "$(task_on 3)" "$N1" 2>&1) && ok "before scancel, the task of node 3 runs on node 1" \
    || bad "move before scancel: $out"
id=$(on 1 squeue -h -n mosscancel -o %i)
on 1 scancel "$id"
wait_until 60 no_user_pids && ok "scancel: no process of the user on any node" \
    || bad "after scancel: $(user_pids | tr '\n' ' ')"
wait $run
for i in 1 2 3 4; do
    n=$(on "$i" "$B/mosps" --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    [ "$n" = 0 ] || bad "node $i's mosd still lists $n job(s) after scancel"
done

# 4. checkpoint and requeue (etc/mos-slurm-requeue.sh): requeued after a checkpoint, the job
#    restarts from it and finishes with the native run's output
"$B/mosjob" 30 1 "$W/native30.a" "$W/native30.b" < /dev/null > /dev/null
cp "$MOS_SRC/etc/mos-slurm-requeue.sh" "$W/requeue.sh"
chmod 755 "$W/requeue.sh"
id=$(usrun env PATH="$B:/usr/bin:/bin" MOS_CONF="$MOSCONF" MOS_CKPT_DIR="$W" MOS_CKPT_EVERY=2 \
    sbatch --parsable -N1 -w "$N2" ./requeue.sh "$B/mosjob" 30 300 "$W/r.a" "$W/r.b" 2> "$W/sbatch.err")
[ -n "$id" ] || bad "sbatch: $(cat "$W/sbatch.err")"
wait_until 60 test -s "$W/mos-job-$id.ckpt" && ok "the batch job wrote its first checkpoint" \
    || bad "no checkpoint: $(tail -3 "$W/slurm-$id.out" 2>/dev/null | tr '\n' ' ')"
on 1 scontrol requeue "$id" || bad "scontrol requeue $id"
# a requeued job waits a while (pending, a begin time ahead) before it may start again: now
wait_until 60 eval '[ "$(on 1 squeue -h -j "$id" -o %T 2>/dev/null)" = PENDING ]'
on 1 scontrol update jobid="$id" begintime=now
done_job() { [ -z "$(on 1 squeue -h -j "$id" -o %i 2>/dev/null)" ]; }
wait_until 180 done_job || bad "job $id did not finish: $(on 1 squeue -j "$id" 2>&1 | tr '\n' ' ')"
out=$(cat "$W/slurm-$id.out" 2>/dev/null)
first=$(sed -n '/^mos: restart/,$p' <<<"$out" | awk '/^step / { print $2; exit }')
grep -q "^mos: restart 1 of job $id from" <<<"$out" && [ "${first:-0}" -gt 1 ] \
    && grep -q '^step 30 ' <<<"$out" && grep -q '^stdin 0 bytes' <<<"$out" && cmp -s "$W/r.a" "$W/native30.a" \
    && [ ! -e "$W/mos-job-$id.ckpt" ] \
    && ok "requeued, the job restarted from its checkpoint (at step $first) and finished as a native run does" \
    || bad "requeue: first step after restart '$first': $(tail -4 <<<"$out" | tr '\n' ' ')"
lab_result
