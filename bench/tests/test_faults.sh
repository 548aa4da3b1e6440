#!/bin/bash
# The fault campaign as a test (label slow: about 20 s a migration on a loaded 2-core machine):
# mosbench faults kills mosds, workers, supervisors, a node, mosrun, or cuts a link at random
# moments of N moves (MOS_FAULTS_N, default 100); every job must end exactly once, right.
#   test_faults.sh [N [KINDS]]: N moves of those kinds only (test_faults_commit: the two kinds
#   that kill the sender right after COMMIT, a minute or two, in the lab label)
set -u
N=${1:-${MOS_FAULTS_N:-100}}
kinds=()
[ -n "${2:-}" ] && kinds=(--kinds "$2")
out=$("$MOS_BIN/mosbench" faults --migrations "$N" "${kinds[@]}" --seed "${MOS_FAULTS_SEED:-$$}" 2>&1); rc=$?
echo "$out" | tail -12
last=$(tail -1 <<<"$out")
[ "${last#result faults }" != "$last" ] || last="not last: $(grep "^result faults" <<<"$out" | tail -1) (last: $last)"
if [ $rc = 0 ] && [ "$last" = "result faults migrations=$N lost=0 duplicated=0 wrong=0" ]; then
    echo "ok: $N moves under faults: none lost, duplicated or wrong"
else
    echo "FAIL: $N moves under faults (rc $rc): $last"; exit 1
fi
