#!/bin/bash
# The lab itself: 3 nodes come up, reach each other, find themselves in the shared config,
# hold their CPU cap, refuse bad requests with one line, and leave nothing behind.
set -u
LAB=${MOS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lab/mos-lab
export MOS_LAB_NAME=labt$$
passes=0; fails=0
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
expect() { # expect NAME CMD...: CMD succeeds
    local name=$1; shift
    if out=$("$@" 2>&1); then ok "$name"; else bad "$name: $out"; fi
}
expect_error() { # expect_error NAME PATTERN CMD...: CMD fails with one line matching PATTERN
    local name=$1 pat=$2; shift 2
    out=$("$@" 2>&1); rc=$?
    if [ $rc != 0 ] && grep -q -- "$pat" <<<"$out" && [ "$(wc -l <<<"$out")" = 1 ]; then ok "$name"
    else bad "$name: rc=$rc output: $out"; fi
}
trap '"$LAB" down >/dev/null 2>&1' EXIT

expect "up 3 nodes at 0.25 CPU" "$LAB" up 3 --cpus 0.25
expect_error "up twice refused" "already up" "$LAB" up 3
for pair in "1 2" "2 3" "3 1"; do
    set -- $pair
    expect "ping node $1 -> node $2" "$LAB" exec "$1" ping -c 2 -W 2 -q "$("$LAB" addr "$2")"
done
if [ -x "${MOS_BIN:-}/mosd" ]; then
    for i in 1 2 3; do
        out=$("$LAB" exec $i "$MOS_BIN/mosd" --check-config 2>&1)
        grep -q "^node ${MOS_LAB_NAME}$i 10.77.0.$i of 3" <<<"$out" && ok "node $i finds itself" \
            || bad "node $i finds itself: $out"
    done
fi
expect_error "node out of range" "out of range 1..3" "$LAB" exec 4 true
expect_error "node not a number" "out of range" "$LAB" addr x
expect_error "not root" "must run as root" setpriv --reuid=65534 --regid=65534 --clear-groups "$LAB" status
expect_error "no iproute2" "apt-get install iproute2" env PATH=/nonexistent /bin/bash "$LAB" status

# CPU cap: a busy loop in a 0.25-CPU node, CPU time from /proc over a 3 s window.
"$LAB" exec 1 /bin/sh -c 'while :; do :; done' &
busy=$!
sleep 0.5
ticks() { awk '{print $14 + $15}' "/proc/$busy/stat"; }
t0=$(ticks); s0=$(date +%s.%N)
sleep 3
t1=$(ticks); s1=$(date +%s.%N)
kill -KILL $busy; wait $busy 2>/dev/null
share=$(awk -v a="$t0" -v b="$t1" -v s="$s0" -v e="$s1" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.3f", (b - a) / hz / (e - s) }')
echo "busy loop in a 0.25-CPU node used $share CPU"
awk -v x="$share" 'BEGIN { exit !(x >= 0.15 && x <= 0.33) }' && ok "CPU cap holds ($share)" \
    || bad "CPU cap: busy loop got $share CPU, expected about 0.25"

expect "down" "$LAB" down

# Unequal nodes: --cpus takes a list, node I the I-th value, the last one the rest.
quota_of() { # quota_of I: node I's cap in CPUs, from its cgroup (v1 cfs quota or v2 cpu.max)
    local d
    for d in /sys/fs/cgroup/cpu/mos-lab-$MOS_LAB_NAME/$MOS_LAB_NAME$1 /sys/fs/cgroup/mos-lab-$MOS_LAB_NAME/$MOS_LAB_NAME$1; do
        [ -f "$d/cpu.cfs_quota_us" ] && { awk -v q="$(cat "$d/cpu.cfs_quota_us")" -v p="$(cat "$d/cpu.cfs_period_us")" 'BEGIN { print q / p }'; return; }
        [ -f "$d/cpu.max" ] && { awk '{ print $1 / $2 }' "$d/cpu.max"; return; }
    done
    echo none
}
expect_error "a bad value in a --cpus list" "or a list of them" "$LAB" up 3 --cpus 0.5,x
expect "up 3 nodes at 0.5,0.25 CPU" "$LAB" up 3 --cpus 0.5,0.25
q="$(quota_of 1) $(quota_of 2) $(quota_of 3)"
[ "$q" = "0.5 0.25 0.25" ] && ok "caps per node from the list: $q" || bad "caps per node: $q, expected 0.5 0.25 0.25"
expect "down again" "$LAB" down
left=$(ip netns list | grep -E "^($MOS_LAB_NAME[0-9]+|$MOS_LAB_NAME-hub)( |$)")
[ -z "$left" ] && ok "no namespace left" || bad "namespaces left: $left"
cg=$(ls -d /sys/fs/cgroup/cpu/mos-lab-$MOS_LAB_NAME /sys/fs/cgroup/mos-lab-$MOS_LAB_NAME 2>/dev/null)
[ -z "$cg" ] && ok "no cgroup left" || bad "cgroups left: $cg"
links=$(ip -br link | grep -E "^(v[0-9]+|br0)[@ ]")
[ -z "$links" ] && ok "no host link left" || bad "links left on the host: $links"
[ ! -e /run/mos-lab/$MOS_LAB_NAME ] && ok "no state left" || bad "state left in /run/mos-lab/$MOS_LAB_NAME"
expect "down again is harmless" "$LAB" down

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
