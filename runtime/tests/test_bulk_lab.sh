#!/bin/bash
# Page contents of a mosd-to-mosd migration travel as the transport's bulk page runs: a job
# with 64 MiB of its own moves node 1 -> node 2, both mosds count the pages sent and received
# in bulk (equal to the pages of the image) and only metadata in control messages; a run
# outside the image's VMAs, a transfer short of a page and a receiver that dies mid-transfer
# each fail with one line, the job goes on at home with complete output, and nothing of it is
# left on node 2. Hooks: MOS_TEST_BULK_FAULT (runtime/tp_img_io.h).
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init bk

lab_up 2 --set balance=0
declare -A MOSD
# start_mosd NODE [VAR=VALUE...]: the node's mosd, debug log (the restore's page counts)
start_mosd() {
    local n=$1; shift
    "$LAB" exec --uncapped "$n" env MOS_LOG=debug "$@" "$B/mosd" >> "$W/mosd$n.log" 2>&1 &
    MOSD[$n]=$!
    for _ in $(seq 50); do [ -S /run/mos-lab/$MOS_LAB_NAME/mosd-${MOS_LAB_NAME}$n.sock ] && break; sleep 0.1; done
}
stop_mosd() {
    local n=$1 p
    for p in $(ip netns pids "${MOS_LAB_NAME}$n"); do
        [ "$(cat /proc/$p/comm 2>/dev/null)" = mosd ] && kill "$p"
    done
    wait "${MOSD[$n]}" 2>/dev/null
    rm -f /run/mos-lab/$MOS_LAB_NAME/mosd-${MOS_LAB_NAME}$n.sock
}
start_mosd 1; start_mosd 2
job_of() { pgrep -P "$1" mosjob | head -1; }
# processes of the job left on node 2 (a restored copy is named mosjob, a husk mos-husk)
leftovers() { for p in $(ip netns pids "$N2"); do cat /proc/$p/comm 2>/dev/null; done | grep -cE '^(mosjob|mos-husk)$'; }
"$B/mosjob" 30 0 "$W/ref.a" "$W/ref.b" 64 < /dev/null > "$W/ref.out"; ref_rc=$?

# start_job NAME: mosjob with 64 MiB under mosrun on node 1, waits for its first step (in a
# sanitizer build, LeakSanitizer cannot stop a moved job's world at exit: leaks are not ours)
start_job() {
    (cd "$W" && ASAN_OPTIONS=detect_leaks=0 exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/mosjob" 30 50 "$W/$1.a" "$W/$1.b" 64 \
        < /dev/null > "$W/$1.out" 2> "$W/$1.err") &
    run=$!
    for _ in $(seq 100); do grep -q "^step 1 " "$W/$1.out" 2>/dev/null && break; sleep 0.1; done
}
same_as_ref() { [ "$1" = "$ref_rc" ] && cmp -s "$W/$2.out" "$W/ref.out" && cmp -s "$W/$2.a" "$W/ref.a"; }

# 1. a good move: pages in bulk on both sides, equal to the image's pages
start_job good
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$(job_of $run)" "$N2" 2>&1)
wait $run; rc=$?
sent=$(grep 'image stream with' "$W/mosd1.log" | tail -1)
recvd=$(grep 'image stream with' "$W/mosd2.log" | tail -1)
img=$(grep 'pages arrived in bulk' "$W/mosd2.log" | tail -1)
s_pages=$(sed -n 's/.* \([0-9]*\) pages in bulk.*/\1/p' <<<"$sent")
s_ctl=$(sed -n 's/.*: \([0-9]*\) bytes in control messages.*/\1/p' <<<"$sent")
r_pages=$(sed -n 's/.* \([0-9]*\) pages in bulk.*/\1/p' <<<"$recvd")
i_bulk=$(sed -n 's/.*restore: \([0-9]*\) of \([0-9]*\) pages arrived in bulk.*/\1/p' <<<"$img")
i_all=$(sed -n 's/.*restore: \([0-9]*\) of \([0-9]*\) pages arrived in bulk.*/\2/p' <<<"$img")
grep -q "now runs on $N2" <<<"$out" && same_as_ref $rc good \
    && ok "a 64 MiB job moves 1 -> 2 and prints what a native run prints" \
    || bad "good move: $out, rc $rc, $(diff "$W/good.out" "$W/ref.out" | head -3 | tr '\n' ' ')"
# the image's own pages: 64 MiB = 16384 filled pages at least; the rest of mosjob is small
if [ -n "$s_pages" ] && [ -n "$i_all" ] && [ "$s_pages" -ge 16384 ] && [ "$s_pages" = "$r_pages" ] \
   && [ "$s_pages" = "$i_bulk" ] && [ $((i_all - i_bulk)) -lt 64 ] && [ "$s_ctl" -lt $((1 << 20)) ]; then
    ok "pages in bulk: sent $s_pages = received $r_pages, $i_bulk of the image's $i_all; $s_ctl bytes of control messages for a $((i_all * 4096 >> 20)) MiB image"
else
    bad "bulk counts: sender '$sent', receiver '$recvd', restore '$img'"
fi

# 2-3. a wrong transfer from the sender: refused by the receiver, the job goes on at home
check_refused() { # NAME FAULT PATTERN
    stop_mosd 1; start_mosd 1 MOS_TEST_BULK_FAULT=$2
    start_job "$1"
    out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$(job_of $run)" "$N2" 2>&1); mrc=$?
    wait $run; rc=$?
    local line; line=$(grep -E "$3" "$W/mosd2.log" | tail -1)
    if [ $mrc != 0 ] && grep -q "continues where it was" <<<"$out" && same_as_ref $rc "$1" \
       && [ -n "$line" ] && [ "$(leftovers)" = 0 ]; then
        ok "$2: refused ($line), the job finished at home with complete output"
    else
        bad "$2: mosmigrate rc $mrc ($out), job rc $rc, node 2: '$line', leftovers $(leftovers)"
    fi
}
check_refused outside outside 'bulk page run at 0x[0-9a-f]+000000000 \(1 pages\) fits no VMA'
check_refused short short 'image ends early: [0-9]+ of [0-9]+ bulk pages arrived'

# 4. the receiver dies in the middle of the bulk transfer
stop_mosd 1; start_mosd 1
stop_mosd 2; start_mosd 2 MOS_TEST_BULK_FAULT=die
start_job die
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$(job_of $run)" "$N2" 2>&1); mrc=$?
wait $run; rc=$?
sleep 0.2
if [ $mrc != 0 ] && grep -q "continues where it was" <<<"$out" && same_as_ref $rc die \
   && grep -q "receiver dies in the middle" "$W/mosd2.log" && [ "$(leftovers)" = 0 ]; then
    ok "receiver killed mid-bulk: the job finished at home with complete output ($out)"
else
    bad "receiver death: mosmigrate rc $mrc ($out), job rc $rc, leftovers $(leftovers)"
fi

lab_result
