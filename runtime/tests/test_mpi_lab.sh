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
lab_result
