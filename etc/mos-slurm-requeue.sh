#!/bin/bash
#SBATCH --requeue
#SBATCH --open-mode=append
# Checkpoint and requeue a long job with mos under Slurm (Slurm has no checkpoint API of its
# own since 20.02):
#
#     sbatch --requeue mos-slurm-requeue.sh PROGRAM [ARGS...]
#
# The program runs under mosrun, kept to the job's nodes (-N), and is checkpointed every
# MOS_CKPT_EVERY seconds (default 600) into MOS_CKPT_DIR (default $HOME), written to a new file
# and renamed, so a kill mid-write keeps the last good one. When the job is requeued (scontrol
# requeue, a node failure, preemption with requeue) Slurm starts this script again under the
# same job id: it then restarts the program from its last checkpoint (mosrun -R) instead of
# from the beginning. The checkpoint is removed once the program has ended by itself.
set -u
if [ $# -eq 0 ] && [ -z "${SLURM_RESTART_COUNT:-}" ]; then
    echo "usage: sbatch --requeue $0 PROGRAM [ARGS...]" >&2
    exit 2
fi
: "${SLURM_JOB_ID:?run this through sbatch}"
CKPT=${MOS_CKPT_DIR:-$HOME}/mos-job-$SLURM_JOB_ID.ckpt
EVERY=${MOS_CKPT_EVERY:-600}
NODES=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | paste -sd,)

if [ -s "$CKPT" ]; then
    echo "mos: restart $((${SLURM_RESTART_COUNT:-0})) of job $SLURM_JOB_ID from $CKPT" >&2
    mosrun -N "$NODES" -C "$CKPT.new" -R "$CKPT" &
else
    mosrun -N "$NODES" -C "$CKPT.new" "$@" &
fi
runner=$!
# Slurm's SIGTERM (scancel, requeue, the time limit) goes on to mosrun, which passes it on to
# the program; the checkpoint stays for the next start
stopped=
trap 'stopped=1; kill -TERM $runner 2>/dev/null' TERM
waited=0
while kill -0 "$runner" 2>/dev/null; do
    sleep 1
    waited=$((waited + 1))
    [ "$waited" -lt "$EVERY" ] && continue
    waited=0
    job=$(pgrep -P "$runner") || continue
    # a checkpoint is taken at home: a job away is asked home first
    if ! why=$(mosmigrate "$job" checkpoint 2>&1) &&
       ! { mosmigrate "$job" home > /dev/null 2>&1 && why=$(mosmigrate "$job" checkpoint 2>&1); }; then
        echo "mos: no checkpoint this time: $why" >&2
        continue
    fi
    mv -f "$CKPT.new" "$CKPT"
done
wait "$runner"
rc=$?
# wait returns early when the trap ran: the program's end is waited for again
[ -n "$stopped" ] && { wait "$runner"; rc=$?; }
[ -z "$stopped" ] && rm -f "$CKPT" "$CKPT.new"
exit $rc
