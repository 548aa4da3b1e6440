#!/bin/bash
# The MPI path for real, with OpenMPI on this machine:
#  1. mpi_probe (known pattern: ring sends, a broadcast, an alltoall, a send inside a split
#     communicator) runs under LD_PRELOAD=libmoscomm.so; the matrix it records is checked byte
#     for byte;
#  2. mosplace maps the recorded matrix onto two 2-slot hosts (the heavy pairs stay together);
#  3. with hosts "localhost cores=1,0", mosplace writes a rankfile that reverses OpenMPI's
#     default order; mpirun --rankfile runs the probe and each rank's reported CPU affinity
#     must be the core the rankfile gave it.
# Runs as root, so mpirun needs --allow-run-as-root; shared memory (vader) between the ranks.
set -u
BIN=$MOS_BIN; LIB=$MOS_BIN/../lib
fails=0; passes=0
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
# In the sanitizer build the probe carries ASan; OpenMPI's own allocations at exit are not ours.
export ASAN_OPTIONS=detect_leaks=0
run() { mpirun --allow-run-as-root -x ASAN_OPTIONS "$@"; }

# 1. record
if run --oversubscribe -np 4 -x LD_PRELOAD="$LIB/libmoscomm.so" -x MOS_COMM_MATRIX="$tmp/m4.txt" \
        "$BIN/mpi_probe" > "$tmp/out4" 2> "$tmp/err4"; then
    grep -v '^#' "$tmp/m4.txt" > "$tmp/m4.body"
    # ring (r+1)*1000 to r+1; bcast 4096 from 0; alltoall 8 to each; 0->2 and 1->3 100 in the split
    printf 'mos-comm-matrix 1\nranks 4\n%s\n' "0 1 5104
0 2 4204
0 3 4104
1 0 8
1 2 2008
1 3 108
2 0 8
2 1 8
2 3 3008
3 0 4008
3 1 8
3 2 8" > "$tmp/m4.want"
    diff -u "$tmp/m4.want" "$tmp/m4.body" && ok "recorded matrix: sends, bcast, alltoall, split communicator, byte for byte" \
        || bad "recorded matrix differs"
else
    bad "mpirun -np 4 under libmoscomm.so failed: $(cat "$tmp/err4")"
fi

# 2. map the recorded matrix onto two hosts: {0,3} (8112 bytes) and {1,2} keep the cut at 12456
printf 'a slots=2\nb slots=2\n' > "$tmp/hosts2"
if "$BIN/mosplace" rankfile --matrix "$tmp/m4.txt" --hosts "$tmp/hosts2" > "$tmp/rf4" 2> "$tmp/e4"; then
    h0=$(sed -n 's/^rank 0=\([a-z]*\) .*/\1/p' "$tmp/rf4"); h3=$(sed -n 's/^rank 3=\([a-z]*\) .*/\1/p' "$tmp/rf4")
    grep -q 'inter-node bytes 12456 ' "$tmp/e4" && [ -n "$h0" ] && [ "$h0" = "$h3" ] \
        && ok "recorded matrix mapped: ranks 0 and 3 share host $h0, 12456 bytes cross" \
        || bad "mapping of the recorded matrix: $(cat "$tmp/rf4" "$tmp/e4")"
else
    bad "mosplace on the recorded matrix: $(cat "$tmp/e4")"
fi

# 3. rankfile for this machine, run for real
ncpu=$(nproc)
if [ "$ncpu" -ge 2 ]; then np=2; cores="1,0"; else np=1; cores="0"
    echo "note: this machine has $ncpu CPU; only one rank can be bound"; fi
run -np $np -x LD_PRELOAD="$LIB/libmoscomm.so" -x MOS_COMM_MATRIX="$tmp/m2.txt" "$BIN/mpi_probe" >/dev/null 2>&1 \
    || bad "recording run with $np ranks"
printf 'localhost cores=%s\n' "$cores" > "$tmp/hosts1"
"$BIN/mosplace" rankfile --matrix "$tmp/m2.txt" --hosts "$tmp/hosts1" --output "$tmp/rf" 2>/dev/null \
    || bad "mosplace for localhost"
echo "rankfile:"; sed 's/^/  /' "$tmp/rf"
if run -np $np --rankfile "$tmp/rf" "$BIN/mpi_probe" > "$tmp/out" 2> "$tmp/err"; then
    for r in $(seq 0 $((np-1))); do
        want=$(sed -n "s/^rank $r=localhost slot=\([0-9]*\)$/\1/p" "$tmp/rf")
        got=$(sed -n "s/^rank $r host [^ ]* cpus \(.*\)$/\1/p" "$tmp/out")
        [ -n "$want" ] && [ "$want" = "$got" ] && ok "rank $r ran bound to core $got as the rankfile says" \
            || bad "rank $r: rankfile slot '$want', ran on cpus '$got'"
    done
else
    bad "mpirun --rankfile failed: $(cat "$tmp/err")"
fi
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
