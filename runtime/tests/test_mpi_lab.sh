#!/bin/bash
# OpenMPI with mosrun -E as its launcher (plm_rsh_agent), as a plain user in a 3-node lab:
# mpirun places one process per node (with and without tree spawn), a Debian MPI application
# (hpcc, the HPC Challenge suite: HPL, PTRANS, FFT, RandomAccess...) gives the same HPL residual
# across 3 nodes as on one, and a Ctrl-C of mpirun leaves no orted nor rank on any node.
# Also the ssh contract the agent honours: words joined and run by the shell, user@node (only
# oneself), -p PORT, a closed stdin.
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init mpi

for p in mpirun orted hpcc; do
    command -v $p > /dev/null || { echo "FAIL: $p is missing (openmpi-bin and hpcc are in cmake/debian-packages.txt)"; exit 1; }
done
lab_up 3 --set balance=0
for i in 1 2 3; do "$LAB" exec --uncapped "$i" "$B/mosd" >> "$W/mosd$i.log" 2>&1 & done
wait_mosd 1 2 3
# the user's mpirun on node 1; mosrun found through PATH, as a site's installed one would be
umpi() {
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" env HOME="$W" PATH="$B:/usr/bin:/bin" "$@")
}
AGENT=(--mca plm_rsh_agent "mosrun -E -r")
erun() { on 1 "${AS_USER[@]}" "$B/mosrun" "$@"; }
user_pids() { # the user's processes on the lab's nodes (mosd runs as root)
    local i; for i in 1 2 3; do ip netns pids "${MOS_LAB_NAME}$i"; done \
        | xargs -r ps -o pid= -o uid= -o comm= -p 2>/dev/null | awk '$2 == 65534 { print $1, $3 }'
}
no_user_pids() { [ -z "$(user_pids)" ]; }

# 1. the ssh contract
out=$(erun -E -r "$N2" 'X=joined;' echo '"$X"' words 2>&1); rc=$?
[ $rc = 0 ] && [ "$out" = "joined words" ] && ok "the words are joined and run by the shell, as ssh does" \
    || bad "ssh words: rc $rc '$out'"
out=$(erun -E -p 2222 -r "nobody@$N2" hostname 2>&1 <&-); rc=$?
[ $rc = 0 ] && [ "$out" = "$N2" ] && ok "-p PORT, the user's own name in user@node and a closed stdin are taken" \
    || bad "user@node: rc $rc '$out'"
out=$(erun -E -r "root@$N2" true 2>&1); rc=$?
[ $rc = 2 ] && [ "$(grep -c . <<<"$out")" = 1 ] && grep -q "someone else" <<<"$out" \
    && ok "another user's name in user@node: refused in one line" || bad "root@: rc $rc '$out'"
out=$(erun -E -p x -r "$N2" true 2>&1); rc=$?
[ $rc = 2 ] && [ "$(grep -c . <<<"$out")" = 1 ] && ok "-p with no port number: refused in one line" \
    || bad "-p x: rc $rc '$out'"

# 2. one process per node, with tree spawn (orteds launch orteds) and without
for spawn in tree direct; do
    extra=(); [ $spawn = direct ] && extra=(--mca plm_rsh_no_tree_spawn 1)
    out=$(umpi timeout 120 mpirun "${AGENT[@]}" "${extra[@]}" -H "$N1,$N2,$N3" -np 3 hostname 2> "$W/host.$spawn.err")
    rc=$?
    [ $rc = 0 ] && [ "$(sort <<<"$out" | tr '\n' ' ')" = "$N1 $N2 $N3 " ] \
        && ok "mpirun ($spawn spawn) runs hostname once on each of the 3 nodes" \
        || bad "$spawn spawn: rc $rc '$(tr '\n' ' ' <<<"$out")' $(head -c 400 "$W/host.$spawn.err")"
done
wait_until 10 no_user_pids && ok "no orted is left behind" || bad "left: $(user_pids | tr '\n' ' ')"

# 2r. a mosplace rankfile holds across the nodes: ranks 0 and 2 talk most, so they share N1
printf 'mos-comm-matrix 1\nranks 3\n0 2 90000\n2 0 90000\n0 1 10\n' > "$W/m3.txt"
printf '%s slots=2\n%s slots=1\n' "$N1" "$N2" > "$W/h3.txt"
"$B/mosplace" rankfile --matrix "$W/m3.txt" --hosts "$W/h3.txt" > "$W/rf3" 2> "$W/rf3.err"
chmod 644 "$W/rf3"
want=$(sed -n 's/^rank \([0-9]*\)=\([^ ]*\) .*/\1 \2/p' "$W/rf3" | sort | tr '\n' ' ')
out=$(umpi timeout 120 mpirun "${AGENT[@]}" --rankfile "$W/rf3" --report-bindings -np 3 \
    sh -c 'echo "$OMPI_COMM_WORLD_RANK $(hostname)"' 2> "$W/rf3.run.err"); rc=$?
got=$(sort <<<"$out" | tr '\n' ' ')
[ $rc = 0 ] && [ "$want" = "0 $N1 1 $N2 2 $N1 " ] && [ "$got" = "$want" ] \
    && grep -q "bound to" "$W/rf3.run.err" \
    && ok "mpirun --rankfile from mosplace: every rank on the node it names ($want), bindings reported" \
    || bad "rankfile: rc $rc want '$want' got '$got' $(head -c 300 "$W/rf3.run.err")"
wait_until 10 no_user_pids || bad "rankfile run left: $(user_pids | tr '\n' ' ')"

# 3. hpcc (not written here) on one node, then across three: the same HPL residual, all checks passed
sed -e 's/^1000 *Ns/400          Ns/' -e 's/^2 *Ps/1            Ps/' -e 's/^2 *Qs/3            Qs/' \
    /usr/share/doc/hpcc/examples/_hpccinf.txt > "$W/hpccinf.txt"
hpl_line() { grep -m1 -F '||Ax-b||_oo/(eps' "$1"; }
for where in one three; do
    hosts="$N1:3"; [ $where = three ] && hosts="$N1,$N2,$N3"
    rm -f "$W/hpccoutf.txt"
    umpi timeout 300 mpirun "${AGENT[@]}" --mca btl tcp,self -H "$hosts" -np 3 hpcc > "$W/hpcc.$where.out" 2>&1
    rc=$?
    [ -f "$W/hpccoutf.txt" ] && mv "$W/hpccoutf.txt" "$W/hpcc.$where.txt"
    [ $rc = 0 ] && grep -q '^Success=1' "$W/hpcc.$where.txt" 2>/dev/null \
        && ! grep -q 'failed residual checks' <(grep -v ' 0 tests completed and failed' "$W/hpcc.$where.txt") \
        && ok "hpcc on $where node(s): every check passed" \
        || bad "hpcc on $where: rc $rc $(tail -3 "$W/hpcc.$where.out" | tr '\n' ' ')"
done
a=$(hpl_line "$W/hpcc.one.txt" 2>/dev/null) b=$(hpl_line "$W/hpcc.three.txt" 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "the HPL residual is the same across 3 nodes as on one: ${a##*=}" \
    || bad "HPL residual: one '$a' three '$b'"

# 4. Ctrl-C of mpirun while its ranks run on the three nodes: none of them, nor an orted, stays
T=$((7000 + $$ % 1000))
(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" env --default-signal=INT HOME="$W" PATH="$B:/usr/bin:/bin" \
    mpirun "${AGENT[@]}" -H "$N1,$N2,$N3" -np 3 sleep $T < /dev/null > "$W/int.out" 2>&1) &
run=$!
ranks() { user_pids | grep -c " sleep$"; }
wait_until 60 eval '[ "$(ranks)" = 3 ]' && ok "3 ranks run" || bad "ranks: $(user_pids | tr '\n' ' ')"
mpirun_pid=$(pgrep -P "$run" -x mpirun || pgrep -u 65534 -x mpirun | head -1)
kill -INT "${mpirun_pid:-$run}"
wait_until 60 no_user_pids && ok "Ctrl-C of mpirun: no rank nor orted left on any node" \
    || bad "after Ctrl-C: $(user_pids | tr '\n' ' ')"
# 5. migratable ranks: mpirun on node 1 starts each rank under mosrun; a rank moved to node 2
# keeps its sockets at home (the deputy), so OpenMPI's tcp transport never notices the move.
# OpenMPI's PMIx data store is a shared mapping that cannot move: PMIX_MCA_gds=hash avoids it.
PP=$B/mosbench-mpi-pingpong
[ -x "$PP" ] || bad "$PP is missing (built where OpenMPI is installed)"
rank_pid() { awk -v r="$2" '$1 == "rank" && $2 == r { print $4 }' "$1" 2>/dev/null; }
# pingpong NAME GDS [MPIRUN OPTIONS]: two ranks under mosrun held at the gate; waits until
# rank 1 is a job
pingpong() {
    local ppname=$1 env=(); [ "$2" = hash ] && env=(env PMIX_MCA_gds=hash)
    shift 2
    umpi "${env[@]}" timeout 300 mpirun "$@" -np 2 --mca btl tcp,self mosrun "$PP" \
        --gate "$W/gate.$ppname" --lat-iters 200 --bw-iters 10 < /dev/null \
        > "$W/pp.$ppname" 2> "$W/pp.$ppname.err" &
    run=$!
    wait_until 60 eval '[ -n "$(rank_pid "$W/pp.$ppname" 1)" ]' && pid=$(rank_pid "$W/pp.$ppname" 1) \
        && wait_until 20 registered "$pid"
}
pp_done() { # NAME: the run ended well and every byte came back as sent
    local want=$(( 2 * (8 * 200 + 1048576 * 10) ))
    wait "$run" && grep -q "checked=$want\$" "$W/pp.$1"
}
if pingpong dstor default --oversubscribe; then
    out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$pid" "$N2" 2>&1); rc=$?
    [ $rc != 0 ] && [ "$(grep -c . <<<"$out")" = 1 ] && grep -q "PMIX_MCA_gds=hash" <<<"$out" \
        && ok "a rank using PMIx's shared data store stays, and the reason names PMIX_MCA_gds=hash" \
        || bad "rank with the PMIx data store: rc $rc '$out'"
    touch "$W/gate.dstor"
    pp_done dstor && ok "... and the job still runs to the end at home" \
        || bad "the unmoved job: $(tail -2 "$W/pp.dstor.err" | tr '\n' ' ')"
else
    bad "the ping-pong ranks did not start: $(tail -2 "$W/pp.dstor.err" | tr '\n' ' ')"
fi
# each rank bound to a core of node 1 (as mpirun binds 2 ranks by default): that binding names
# node 1's CPUs and is not carried to node 2, where the rank gets the node's own (its mosd's)
cpus_of() { taskset -pc "$1" 2>/dev/null | sed 's/.*: //'; }
ns_pid() { ip netns pids "$1" | xargs -r ps -o pid= -o comm= -p 2>/dev/null | awk -v c="$2" '$2 ~ c { print $1; exit }'; }
if pingpong away hash --bind-to core; then
    home_cpus=$(cpus_of "$pid")
    out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$pid" "$N2" 2>&1)
    grep -q "now runs on $N2" <<<"$out" && ok "rank 1 moved to $N2 while the ranks talk" || bad "move: '$out'"
    away_cpus=$(cpus_of "$(ns_pid "$N2" '^mosbench-mpi')") mosd2_cpus=$(cpus_of "$(ns_pid "$N2" '^mosd$')")
    if [ "$(nproc)" -lt 2 ]; then
        echo "note: one CPU here: a binding cannot differ from the node's CPUs (not checked)"
    else
        [[ $home_cpus =~ ^[0-9]+$ ]] && [ -n "$away_cpus" ] && [ "$away_cpus" = "$mosd2_cpus" ] \
            && [ "$away_cpus" != "$home_cpus" ] \
            && ok "rank 1 was bound to CPU $home_cpus at home; on $N2 it runs on the node's CPUs ($away_cpus)" \
            || bad "binding: home '$home_cpus', away '$away_cpus', node 2's mosd '$mosd2_cpus'"
    fi
    # home and out again: home, it has its binding back (its shell kept it)
    out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$pid" home 2>&1)
    back_cpus=$(cpus_of "$pid")
    out2=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$pid" "$N2" 2>&1)
    grep -q "now runs on $N2" <<<"$out2" && [ -n "$home_cpus" ] && [ "$back_cpus" = "$home_cpus" ] \
        && ok "home again it is bound to CPU $back_cpus as before; then away again" \
        || bad "home and away: '$out' '$out2', binding back home '$back_cpus' (was '$home_cpus')"
    touch "$W/gate.away"
    pp_done away && ok "every 8-byte and 1 MiB message between the ranks came back as sent, rank 1 away" \
        || bad "ping-pong away: $(tail -3 "$W/pp.away.err" | tr '\n' ' ')"
else
    bad "the ping-pong ranks did not start: $(tail -2 "$W/pp.away.err" | tr '\n' ' ')"
fi

# hpcc, 2 ranks on node 1: natively, then under mosrun with one rank moved to node 2 mid-run
# (after it used 0.3 s of CPU, before HPL printed its residual): the same residual, all checks passed
mkdir -p "$W/h2" && chmod 777 "$W/h2"
sed -e 's/^1000 *Ns/400          Ns/' -e 's/^2 *Ps/1            Ps/' -e 's/^2 *Qs/2            Qs/' \
    /usr/share/doc/hpcc/examples/_hpccinf.txt > "$W/h2/hpccinf.txt"
hpcc2() { # KIND [mosrun]: hpcc's report in $W/hpcc2.KIND.txt
    local kind=$1; shift
    (cd "$W/h2" && rm -f hpccoutf.txt && exec "$LAB" exec 1 "${AS_USER[@]}" env HOME="$W" \
        PATH="$B:/usr/bin:/bin" PMIX_MCA_gds=hash timeout 600 mpirun --oversubscribe -np 2 \
        --mca btl tcp,self "$@" hpcc < /dev/null > "$W/hpcc2.$kind.out" 2>&1)
}
hpcc_ok() { grep -q '^Success=1' "$1" && ! grep -v ' 0 tests completed and failed' "$1" | grep -q 'failed residual checks'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
hpcc2 native; rc=$?
mv "$W/h2/hpccoutf.txt" "$W/hpcc2.native.txt" 2>/dev/null
[ $rc = 0 ] && hpcc_ok "$W/hpcc2.native.txt" && ok "hpcc, 2 ranks natively: every check passed" \
    || bad "hpcc natively: rc $rc $(tail -3 "$W/hpcc2.native.out" | tr '\n' ' ')"
hpcc2 away mosrun & run=$!
hpcc_job() { on 1 "$B/mosps" 2>/dev/null | awk 'NR > 1 && $NF ~ /hpcc/ { print $1; exit }'; }
wait_until 120 eval '[ -n "$(hpcc_job)" ]'; pid=$(hpcc_job)
if [ -n "$pid" ] && wait_until 120 eval '[ "$(cpu_ticks "$pid")" -ge 30 ]'; then
    early=yes; hpl_line "$W/h2/hpccoutf.txt" > /dev/null 2>&1 && early=no
    out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$pid" "$N2" 2>&1)
    grep -q "now runs on $N2" <<<"$out" && [ $early = yes ] \
        && ok "an hpcc rank moved to $N2 mid-run, before HPL printed its residual" || bad "hpcc move ($early): '$out'"
else
    bad "no hpcc rank ran under mos: $(tail -3 "$W/hpcc2.away.out" | tr '\n' ' ')"
fi
wait $run; rc=$?
mv "$W/h2/hpccoutf.txt" "$W/hpcc2.away.txt" 2>/dev/null
[ $rc = 0 ] && hpcc_ok "$W/hpcc2.away.txt" && ok "hpcc with a rank away: every check passed" \
    || bad "hpcc away: rc $rc $(tail -3 "$W/hpcc2.away.out" | tr '\n' ' ')"
a=$(hpl_line "$W/hpcc2.native.txt" 2>/dev/null) b=$(hpl_line "$W/hpcc2.away.txt" 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "the HPL residual with a rank moved away is the native one: ${a##*=}" \
    || bad "HPL residual: native '$a' away '$b'"
# 6. the balancer, on a new 2-node lab at half a CPU each: it moves an hpcc rank off the crowded
# node 1, measures there what the rank's calls home cost it (OpenMPI's sockets stay at home),
# brings it home for that, and does not send it out again; the result is still the native one
"$LAB" down > /dev/null 2>&1
lab_up 2 --cpus 0.5 --set min_residence_ms=2000 --set balance_calls=1
for i in 1 2; do "$LAB" exec --uncapped "$i" "$B/mosd" > "$W/bal$i.log" 2>&1 & done
wait_mosd 1 2
wait_view 1 2 || bad "node 1 never heard of node 2"
hpcc2 balanced mosrun; rc=$?
mv "$W/h2/hpccoutf.txt" "$W/hpcc2.balanced.txt" 2>/dev/null
out_moves=$(grep -c "balance: moving job pid" "$W/bal1.log")
home_moves=$(grep -c "balance: moving guest pid .*its calls home waited" "$W/bal2.log")
again=$(grep -o "balance: moving job pid [0-9]*" "$W/bal1.log" | sort | uniq -d | wc -l)
[ "$out_moves" -ge 1 ] && ok "the balancer moved $out_moves hpcc rank(s) to node 2" \
    || bad "the balancer moved no rank: $(grep -h balance "$W"/bal*.log | tail -3 | tr '\n' ' ')"
[ "$home_moves" -ge 1 ] && [ "$again" = 0 ] \
    && ok "... and sent it home for its calls home ($(grep -o 'waited [0-9.]* s' "$W/bal2.log" | head -1) per CPU-second), never out again" \
    || bad "calls home: $home_moves moves home, $again ranks sent out twice: $(grep -h 'balance: moving' "$W"/bal*.log | tr '\n' ' ')"
b=$(hpl_line "$W/hpcc2.balanced.txt" 2>/dev/null)
[ $rc = 0 ] && hpcc_ok "$W/hpcc2.balanced.txt" && [ -n "$b" ] && [ "$b" = "$a" ] \
    && ok "hpcc with ranks moved by the balancer: every check passed, the native HPL residual" \
    || bad "hpcc balanced: rc $rc residual '$b' (native '$a') $(tail -3 "$W/hpcc2.balanced.out" | tr '\n' ' ')"
lab_result
