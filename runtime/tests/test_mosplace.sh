#!/bin/bash
# mosplace rankfile: a 2D stencil on four 16-slot hosts maps to compact blocks (fewer inter-node
# bytes than OpenMPI's by-slot order), every rank gets its own slot, and malformed input gives
# one line naming the file and line with a non-zero status.
set -u
P=$MOS_BIN/mosplace
. "$(dirname "$0")/cli_lib.sh"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# 8x8 grid, 4 neighbours, 1000 bytes per message each way.
{ echo "mos-comm-matrix 1"; echo "ranks 64"
  for y in $(seq 0 7); do for x in $(seq 0 7); do r=$((y*8+x))
    [ $x -lt 7 ] && echo "$r $((r+1)) 1000" && echo "$((r+1)) $r 1000"
    [ $y -lt 7 ] && echo "$r $((r+8)) 1000" && echo "$((r+8)) $r 1000"
  done; done; } > "$tmp/stencil.txt"
printf 'n1 slots=16\nn2 slots=16\nn3 slots=16 # comment\nn4 slots=16\n' > "$tmp/hosts"

if "$P" rankfile --matrix "$tmp/stencil.txt" --hosts "$tmp/hosts" > "$tmp/rf" 2> "$tmp/err"; then
    lines=$(grep -c '^rank [0-9]*=n[1-4] slot=[0-9]*$' "$tmp/rf")
    dup=$(sed 's/^rank [0-9]*=//' "$tmp/rf" | sort | uniq -d | wc -l)
    maxper=$(sed 's/^rank [0-9]*=\(n[0-9]\) .*/\1/' "$tmp/rf" | sort | uniq -c | sort -rn | awk 'NR==1{print $1}')
    [ "$lines" = 64 ] && [ "$dup" = 0 ] && [ "$maxper" -le 16 ] && ok "64 ranks, one slot each, <= 16 per host" \
        || bad "rankfile shape: lines=$lines dup=$dup maxper=$maxper"
    read -r ipc byslot <<<"$(sed -n 's/.*inter-node bytes \([0-9]*\) (by-slot \([0-9]*\),.*/\1 \2/p' "$tmp/err")"
    # The best 4-way cut of an 8x8 grid is 4x4 quadrants: 16 edges, 32000 bytes; by-slot cuts rows: 48000.
    [ "$ipc" = 32000 ] && [ "$byslot" = 48000 ] && ok "stencil: inter-node $ipc bytes vs by-slot $byslot" \
        || bad "stencil bytes: $(cat "$tmp/err")"
else
    bad "mosplace failed: $(cat "$tmp/err")"
fi
"$P" rankfile --matrix "$tmp/stencil.txt" --hosts "$tmp/hosts" --policy byslot --output "$tmp/rf2" 2>/dev/null \
    && grep -q '^rank 16=n2 slot=0$' "$tmp/rf2" && ok "--policy byslot --output" || bad "byslot output"

printf 'mos-comm-matrix 1\nranks 4\n0 1 10\n\n1 9 10\n' > "$tmp/badrank"
check_err "rank out of range" 1 "$tmp/badrank:5: destination rank '9' is not in 0..3" "$P" rankfile --matrix "$tmp/badrank" --hosts "$tmp/hosts"
printf 'mos-comm-matrix 1\nranks 4\n0 1 ten\n' > "$tmp/badbytes"
check_err "bad byte count" 1 "$tmp/badbytes:3: byte count 'ten'" "$P" rankfile --matrix "$tmp/badbytes" --hosts "$tmp/hosts"
printf 'n1 slots=4\nn2 slot=4\n' > "$tmp/badhosts"
check_err "bad hosts line" 1 "$tmp/badhosts:2: unknown setting 'slot=4'" "$P" rankfile --matrix "$tmp/stencil.txt" --hosts "$tmp/badhosts"
printf 'n1 slots=8\n' > "$tmp/fewslots"
check_err "too few slots" 1 "64 ranks but the hosts have only 8 slots" "$P" rankfile --matrix "$tmp/stencil.txt" --hosts "$tmp/fewslots"
check_err "missing file" 1 "$tmp/nope: No such file" "$P" rankfile --matrix "$tmp/nope" --hosts "$tmp/hosts"
check_err "missing --hosts" 2 "needs --matrix FILE and --hosts FILE" "$P" rankfile --matrix "$tmp/stencil.txt"
check_err "unknown command" 2 "unknown or missing command frob" "$P" frob
check_err "bad policy" 2 "unknown policy 'best'" "$P" rankfile --policy best
finish
