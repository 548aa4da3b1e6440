#!/bin/bash
# mosbench mpi: what keeping an MPI rank's sockets at home costs. Two OpenMPI ranks
# (mosbench-mpi-pingpong: 8-byte and 1 MiB ping-pongs, every message checked) on node 1 of a
# 2-node lab, as a plain user, in one run:
#   native  mpirun -np 2 --mca btl tcp,self pingpong             (no mos at all)
#   home    mpirun ... mosrun pingpong                            (under mos, never moved)
#   away    mpirun ... mosrun pingpong, rank 1 moved to node 2 by mosmigrate before the timing
# Away, rank 1's sockets stay at home: each message crosses node 1's loopback to its deputy
# (mosrun) and the deputy link to node 2. Each figure is the median of --repeat runs; the last
# line is
#   result mpi lat_native_us= lat_away_us= bw_native_gbps= bw_away_gbps= lat_home_us=
#              bw_home_gbps= lat_ratio= bw_ratio=
# (ratios: away over native). OpenMPI's PMIx data store is a shared mapping that never moves,
# so the runs set PMIX_MCA_gds=hash, as a user of migratable ranks does.
#   mosbench mpi [--repeat R] [--lat-iters N] [--bw-iters N]
set -u
REPEAT=3 LAT_ITERS=2000 BW_ITERS=100
while [ $# -gt 0 ]; do
    case $1 in
    --repeat) REPEAT=${2:-}; shift 2 || break ;;
    --lat-iters) LAT_ITERS=${2:-}; shift 2 || break ;;
    --bw-iters) BW_ITERS=${2:-}; shift 2 || break ;;
    *) echo "mosbench mpi: bad argument '$1'" >&2; exit 2 ;;
    esac
done
for v in "$REPEAT" "$LAT_ITERS" "$BW_ITERS"; do
    [[ $v =~ ^[0-9]+$ ]] && [ "$v" -ge 1 ] && [ "$v" -le 1000000 ] \
        || { echo "mosbench mpi: counts must be whole numbers from 1 to 1000000" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "mosbench mpi: must run as root (it builds a lab)" >&2; exit 1; }
BIN=${MOS_BIN:-$(dirname "$(readlink -f "$0")")}
LAB=${MOS_LAB:-$(dirname "$(readlink -f "$0")")/mos-lab}
[ -x "$LAB" ] || LAB=$(dirname "$(readlink -f "$0")")/../tests/lab/mos-lab
PP=$BIN/mosbench-mpi-pingpong
command -v mpirun > /dev/null && [ -x "$PP" ] \
    || { echo "mosbench mpi: needs OpenMPI's mpirun and $PP (built where OpenMPI is installed)" >&2; exit 1; }
[ -x "$BIN/mosd" ] && [ -x "$LAB" ] || {
    echo "mosbench mpi: cannot find mosd or mos-lab (set MOS_BIN and MOS_LAB)" >&2; exit 1; }
export MOS_LAB_NAME=mm$$
W=$(mktemp -d /tmp/mosbench-mpi.XXXXXX)
chmod 777 "$W"
trap 'jobs -p | xargs -r kill -9 2>/dev/null; "$LAB" down >/dev/null 2>&1; rm -rf "$W"' EXIT
AS_USER=(setpriv --reuid=65534 --regid=65534 --clear-groups)
N2=${MOS_LAB_NAME}2

# uncapped nodes (the whole machine each): the figures are the path's, not a CPU quota's
"$LAB" up 2 --cpus "$(nproc)" --set balance=0 >/dev/null || exit 1
for i in 1 2; do "$LAB" exec --uncapped "$i" "$BIN/mosd" >> "$W/mosd$i.log" 2>&1 & disown; done
for _ in $(seq 100); do
    [ -S "/run/mos-lab/$MOS_LAB_NAME/mosd-${MOS_LAB_NAME}1.sock" ] \
        && [ -S "/run/mos-lab/$MOS_LAB_NAME/mosd-${MOS_LAB_NAME}2.sock" ] && break
    sleep 0.1
done

# one_run KIND N: one measurement; prints "lat_us=... bw_gbps=... checked=..." or fails
one_run() {
    local kind=$1 n=$2 out=$W/$1.$2 gate=$W/gate.$1.$2 pre=() rank1 i
    [ "$kind" != native ] && pre=("$BIN/mosrun")
    [ "$kind" = home ] && touch "$gate"
    (cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" env HOME="$W" PMIX_MCA_gds=hash \
        mpirun --oversubscribe -np 2 --mca btl tcp,self "${pre[@]}" "$PP" --gate "$gate" \
        --lat-iters "$LAT_ITERS" --bw-iters "$BW_ITERS" < /dev/null > "$out" 2> "$out.err") &
    local run=$!
    if [ "$kind" = native ]; then
        touch "$gate"
    elif [ "$kind" = away ]; then
        for i in $(seq 600); do
            rank1=$(awk '$1 == "rank" && $2 == 1 { print $4 }' "$out")
            [ -n "$rank1" ] && "$LAB" exec 1 "$BIN/mosps" 2>/dev/null | awk -v p="$rank1" '$1 == p { f = 1 } END { exit !f }' && break
            sleep 0.05
        done
        local moved; moved=$("$LAB" exec 1 "${AS_USER[@]}" "$BIN/mosmigrate" "${rank1:-none}" "$N2" 2>&1)
        grep -q "now runs on $N2" <<<"$moved" || {
            echo "mosbench mpi: rank 1 (pid ${rank1:-unknown}) did not move: $moved" >&2
            kill -9 "$run" 2>/dev/null; return 1; }
        touch "$gate"
    fi
    wait "$run" || { echo "mosbench mpi: the $kind run failed: $(tail -2 "$out.err" | tr '\n' ' ')" >&2; return 1; }
    grep -m1 '^lat_us=' "$out" || { echo "mosbench mpi: the $kind run printed no figures" >&2; return 1; }
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

for r in $(seq "$REPEAT"); do
    for kind in native home away; do
        line=$(one_run "$kind" "$r") || exit 1
        echo "$kind run $r: $line"
        echo "$line" >> "$W/$kind.all"
    done
done
declare -A lat bw
for kind in native home away; do
    lat[$kind]=$(field lat_us < "$W/$kind.all" | median)
    bw[$kind]=$(field bw_gbps < "$W/$kind.all" | median)
done
echo "8-byte half round trip: native ${lat[native]} us, under mos at home ${lat[home]} us, rank 1 away ${lat[away]} us"
echo "1 MiB ping-pong:        native ${bw[native]} Gb/s, under mos at home ${bw[home]} Gb/s, rank 1 away ${bw[away]} Gb/s"
awk -v ln="${lat[native]}" -v la="${lat[away]}" -v bn="${bw[native]}" -v ba="${bw[away]}" \
    -v lh="${lat[home]}" -v bh="${bw[home]}" \
    'BEGIN { printf "result mpi lat_native_us=%.2f lat_away_us=%.2f bw_native_gbps=%.3f bw_away_gbps=%.3f lat_home_us=%.2f bw_home_gbps=%.3f lat_ratio=%.2f bw_ratio=%.3f\n", ln, la, bn, ba, lh, bh, la / ln, ba / bn }'
