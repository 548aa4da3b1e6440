#!/bin/bash
# Forwarded calls in Prometheus (issue 18, Metrics): a job moved to node 2 makes a known number
# of forwarded writes; node 2's mosd serves its guests' calls (reported by the supervisor every
# second while the guest runs, and once when it ends): mos_forwarded_calls_total{class=
# "forward"} grows by at least that number, the latency histogram counts each of those calls
# once (_count equals them, +Inf too), its buckets are cumulative (never decreasing), the bytes
# carried grow by at least one per write; the counts stay after the guest has left.
set -u
. "$(dirname "$0")/lab_lib.sh"
lab_init fc

lab_up 2 --set balance=0 --set metrics_listen=127.0.0.1:9771
"$LAB" exec --uncapped 1 "$B/mosd" >> "$W/mosd1.log" 2>&1 &
"$LAB" exec --uncapped 2 "$B/mosd" >> "$W/mosd2.log" 2>&1 &
wait_mosd 1 2
scrape() {
    on "$1" python3 -c 'import urllib.request as u
print(u.urlopen("http://127.0.0.1:9771/metrics", timeout=10).read().decode())'
}
metric() { scrape "$1" | awk -v m="$2" '$1 == m { print $2 }'; }  # metric N 'NAME{LABELS}'
fwd() { metric 2 'mos_forwarded_calls_total{class="forward"}'; }
WRITES=1000

before=$(fwd); bytes_before=$(metric 2 mos_forwarded_bytes_total)
[ "$before" = 0 ] && [ "$bytes_before" = 0 ] && ok "node 2 serves the call figures, zero before any guest" \
    || bad "before any guest: forward '$before' bytes '$bytes_before'"

(cd "$W" && exec "$LAB" exec 1 "${AS_USER[@]}" "$B/mosrun" "$B/moswriter" $WRITES "$W/go" \
    > "$W/w.out" 2> "$W/w.err") &
run=$!
job_up() { local j; j=$(pgrep -P "$run" -x moswriter | head -1); [ -n "$j" ] && registered "$j"; }
wait_until 20 job_up
job=$(pgrep -P "$run" -x moswriter | head -1)
out=$(on 1 "${AS_USER[@]}" "$B/mosmigrate" "$job" "$N2" 2>&1)
grep -q "now runs on $N2" <<<"$out" && ok "the writer moved to node 2 while it waits" || bad "mosmigrate: $out"

# while it waits it asks home whether the go file exists (access, forwarded) every 20 ms:
# the supervisor's periodic report shows them before the guest ends
grows() { [ "$(fwd)" -gt 0 ]; }
wait_until 20 grows && ok "periodic reports: node 2 counts the waiting guest's calls ($(fwd) so far)" \
    || bad "no forwarded calls counted on node 2 while the guest runs"
waiting=$(fwd)

touch "$W/go"
wait $run; rc=$?
[ "$rc" = 0 ] && [ "$(stat -c %s "$W/w.out")" = $WRITES ] && ok "the guest wrote $WRITES bytes at home and exited 0" \
    || bad "writer: status $rc, $(stat -c %s "$W/w.out") bytes, $(head -c 300 "$W/w.err")"

# the last report comes as the supervisor ends: poll until the writes are in
enough() { [ "$(fwd)" -ge $((waiting + WRITES)) ]; }
wait_until 20 enough && ok "node 2 counted at least $WRITES more forwarded calls ($waiting -> $(fwd))" \
    || bad "forwarded calls on node 2: $waiting before the writes, $(fwd) after"

s=$(scrape 2)
count=$(awk '$1 == "mos_forwarded_call_duration_seconds_count" { print $2 }' <<<"$s")
calls=$(awk '$1 == "mos_forwarded_calls_total{class=\"forward\"}" { print $2 }' <<<"$s")
inf=$(awk '$1 == "mos_forwarded_call_duration_seconds_bucket{le=\"+Inf\"}" { print $2 }' <<<"$s")
sum=$(awk '$1 == "mos_forwarded_call_duration_seconds_sum" { print $2 }' <<<"$s")
[ -n "$count" ] && [ "$count" = "$calls" ] && [ "$inf" = "$count" ] \
    && ok "histogram: _count = +Inf bucket = forwarded calls ($count), _sum $sum s" \
    || bad "histogram: count '$count' +Inf '$inf' calls '$calls'"
buckets=$(grep '^mos_forwarded_call_duration_seconds_bucket{' <<<"$s" | awk '{ print $2 }')
nb=$(wc -l <<<"$buckets")
mono=$(awk 'NR > 1 && $1 < prev { bad = 1 } { prev = $1 } END { print bad ? "no" : "yes" }' <<<"$buckets")
les=$(grep '^mos_forwarded_call_duration_seconds_bucket{' <<<"$s" | grep -o 'le="[^"]*"' | head -1)
[ "$nb" = 15 ] && [ "$mono" = yes ] && [ "$les" = 'le="5e-05"' ] \
    && ok "histogram: 15 buckets from 50 us, cumulative (never decreasing)" \
    || bad "histogram buckets: $nb, monotone $mono, first $les: $(tr '\n' ' ' <<<"$buckets")"
bytes=$(awk '$1 == "mos_forwarded_bytes_total" { print $2 }' <<<"$s")
[ "${bytes:-0}" -ge $WRITES ] && ok "bytes carried: $bytes" || bad "bytes carried: '$bytes'"
grep -q '^mos_forwarded_call_errors_total [0-9]*$' <<<"$s" && grep -q '^mos_forwarded_calls_total{class="virtual"} [0-9]*$' <<<"$s" \
    && ok "errors and the other classes are served" || bad "no errors or virtual figures"
gone() { ! registered "$job" 2; }
wait_until 10 gone
[ "$(fwd)" = "$calls" ] && ok "the guest has left node 2; its calls stay counted" \
    || bad "after the guest left: $(fwd), was $calls"
served=$(scrape 2 | awk '/^mos_/ { sub(/[{ ].*/, "", $1); print $1 }' | sort -u)
missing=$(grep -o 'mos_forwarded_[a-z_]*' "$MOS_SRC/etc/grafana-mos.json" | sed 's/_bucket$//' | sort -u | while read -r m; do
    grep -qx "$m\(_bucket\)\?" <<<"$served" || echo "$m"; done)
used=$(grep -c 'mos_forwarded_' "$MOS_SRC/etc/grafana-mos.json")
[ "$used" -gt 0 ] && [ -z "$missing" ] && ok "the Grafana panel's figures are served" \
    || bad "Grafana: $used uses, not served: $missing"
lab_result
