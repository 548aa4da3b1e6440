#!/bin/bash
# mosbench's command line: a result line for a known bench, a clear error for anything else.
set -u
B=$MOS_BIN/mosbench
fails=0; passes=0
ok()   { passes=$((passes+1)); echo "ok: $1"; }
bad()  { fails=$((fails+1)); echo "FAIL: $1"; }
out=$("$B" gossip-model --nodes 1000 --window 16) && grep -q '^result gossip-model nodes=1000 window=16 avg_age_model=64\.[0-9]' <<<"$out" \
    && ok "gossip-model result line" || bad "gossip-model result line: $out"
out=$("$B" nosuch 2>&1); rc=$?
[ $rc = 2 ] && grep -q "unknown benchmark 'nosuch'" <<<"$out" && ok "unknown bench" || bad "unknown bench: rc=$rc $out"
out=$("$B" gossip-model --nodes 1 2>&1); rc=$?
[ $rc = 2 ] && grep -q "need nodes >= 2" <<<"$out" && ok "bad nodes" || bad "bad nodes: rc=$rc $out"
out=$("$B" syscall --iters 200 2>&1); rc=$?
[ $rc = 0 ] && grep -Eq '^result syscall write1_us=[0-9.]+ native_us=[0-9.]+ rtt_us=[0-9.]+ read64k_us=[0-9.]+$' <<<"$out" \
    && ok "syscall bench runs and ends with its result line" || bad "syscall bench: rc=$rc $out"
out=$("$B" seal --bytes 8M --passes 2 2>&1); rc=$?
[ $rc = 0 ] && grep -Eq '^result seal bytes=8388608 frame=1048576 memcpy_gbps=[0-9.]+ tag_gbps=[0-9.]+ seal_gbps=[0-9.]+ tag_vs_memcpy=[0-9.]+ seal_vs_tag=[0-9.]+ seal64_ns=[0-9]+ seal4k_ns=[0-9]+$' <<<"$out" \
    && ok "seal bench runs and ends with its result line" || bad "seal bench: rc=$rc $out"
out=$("$B" seal --frame 1K 2>&1); rc=$?
[ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "--frame" <<<"$out" && ok "seal: a frame below a page refused in one line" || bad "seal frame: rc=$rc $out"
out=$("$B" gossip --nodes 200 --window 8 --steps 500 --seed 7 --loss 0.1 --churn 0.001 2>&1) \
    && grep -Eq '^result gossip nodes=200 window=8 avg_age=[0-9.]+ avg_age_model=[0-9.]+ max_age=[0-9.]+ max_age_model=[0-9.]+ bytes_per_node_step=[0-9.]+$' <<<"$(tail -1 <<<"$out")" \
    && ok "gossip simulator result line" || bad "gossip simulator result line: $out"
a=$("$B" gossip --nodes 100 --window 4 --steps 400 --seed 3 | tail -1)
b=$("$B" gossip --nodes 100 --window 4 --steps 400 --seed 3 | tail -1)
[ "$a" = "$b" ] && ok "gossip simulator is reproducible with a seed" || bad "same seed, different results: $a / $b"
out=$("$B" gossip --nodes 100 --window 100 2>&1); rc=$?
[ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && ok "gossip: window >= nodes refused" || bad "gossip window: rc=$rc $out"
out=$("$B" gossip --nodes 1000 --window 16 --steps 100 2>&1); rc=$?
[ $rc = 2 ] && grep -q "warm-up" <<<"$out" && ok "gossip: too few steps refused" || bad "gossip steps: rc=$rc $out"
out=$("$B" gossip --loss 2 2>&1); rc=$?
[ $rc = 2 ] && grep -q "bad argument '--loss' 2" <<<"$out" && ok "gossip: bad loss refused" || bad "gossip loss: rc=$rc $out"
out=$("$B" migrate --sizes 4M,8M --backend tcp 2>&1) && grep -q '^result migrate fixed_ms=[-0-9.]* per_page_us=[-0-9.]* r2=[-0-9.]* gbps=[0-9.]* floor_gbps=[0-9.]* ratio=[0-9.]* freeze_ms_1g=NA total_s_1g=NA per_thread_us=NA$' <<<"$out" \
    && ok "migrate result line (small sizes, tcp)" || bad "migrate result line: $out"
# --threads: hogs of 1 and 4 threads, a table per thread count, a numeric per-thread cost
out=$("$B" migrate --sizes 4M,8M --backend tcp --threads 1,4 2>&1); rc=$?
[ $rc = 0 ] && grep -Eq '^result migrate fixed_ms=[-0-9.]+ per_page_us=[-0-9.]+ r2=[-0-9.]+ .* total_s_1g=NA per_thread_us=-?[0-9]+\.[0-9]+$' <<<"$out" \
    && [ "$(grep -c '^threads [14]:$' <<<"$out")" = 2 ] && grep -q '^fit: .* x (threads - 1) (R^2 [-0-9.]*, 4 runs)' <<<"$out" \
    && grep -Eq '^per thread at each size: 4M -?[0-9.]+ us, 8M -?[0-9.]+ us; median -?[0-9.]+ us$' <<<"$out" \
    && grep -Eq '^per thread, each phase \(median over the sizes\): freeze -?[0-9.]+ us, capture' <<<"$out" \
    && ok "migrate --threads 1,4: a table per count, per_thread_us in the result line" \
    || bad "migrate --threads 1,4: rc=$rc $out"
# --live pre: each size moved by stop-and-copy and live through mos_migrate_send, the hogs
# writing 8 MiB/s meanwhile, every page of every copy checked; rounds may be 0 (a kernel
# without userfaultfd write-protect in async mode moves by stop-and-copy, said on stderr)
out=$("$B" migrate --sizes 4M,8M --backend tcp --live pre --dirty-rate 8 --repeat 1 2>&1); rc=$?
[ $rc = 0 ] && grep -q '^result migrate fixed_ms=.* per_thread_us=NA$' <<<"$out" \
    && grep -q '^ *size sc_total_ms sc_down_ms live_total_ms live_down_ms ' <<<"$out" \
    && grep -Eq '^result migrate_live size_mib=8 dirty_mib_s=8 downtime_ms=[0-9.]+ rounds=[0-9]+ resent_pages=[0-9]+ total_ms=[0-9.]+ stopcopy_downtime_ms=[0-9.]+ stopcopy_total_ms=[0-9.]+ downtime_ratio=[0-9.]+ total_ratio=[0-9.]+ ahead_pages=[0-9]+ kept_pages=[0-9]+ backend=tcp$' <<<"$out" \
    && ok "migrate --live pre --dirty-rate 8: side by side, result migrate_live" \
    || bad "migrate --live pre --dirty-rate 8: rc=$rc $out"
for args in "--live post --backend tcp" "--live pre --backend file" "--live x --backend tcp" \
            "--dirty-rate x --backend tcp"; do
    out=$("$B" migrate --sizes 4M,8M $args 2>&1); rc=$?
    [ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "^mosbench migrate: " <<<"$out" \
        && ok "migrate: '$args' refused in one line" || bad "migrate $args: rc=$rc $out"
done
out=$("$B" migrate --as-hog x 1 1 2>&1); rc=$?
[ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && ok "migrate: bad --as-hog (the hog's own entry) refused in one line" \
    || bad "migrate --as-hog x: rc=$rc $out"
for arg in 0 2000 x "" 1,1 4,x; do
    out=$("$B" migrate --sizes 4M,8M --threads "$arg" 2>&1); rc=$?
    [ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "^mosbench migrate: --threads '" <<<"$out" \
        && ok "migrate: --threads '$arg' refused in one line" || bad "migrate --threads '$arg': rc=$rc $out"
done
out=$("$B" migrate --sizes 4M 2>&1); rc=$?
[ $rc = 2 ] && grep -q "at least two sizes" <<<"$out" && ok "migrate: one size refused" || bad "migrate one size: rc=$rc $out"
out=$("$B" migrate --sizes 4M,x 2>&1); rc=$?
[ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "--sizes 'x' is not a size" <<<"$out" \
    && ok "migrate: bad size" || bad "migrate bad size: rc=$rc $out"
out=$("$B" migrate --sizes 4M,5000 2>&1); rc=$?
[ $rc = 2 ] && grep -q -- "--sizes '5000' is not a whole number of 4K pages" <<<"$out" \
    && ok "migrate: a size of part of a page refused" || bad "migrate part page: rc=$rc $out"

# Sizes take 4096, 64K, 16M, 2G. A real 2 GiB run would cost seconds and gigabytes, so --bytes 2G
# is checked in the plan line, which is printed before the bench listens: on 192.0.2.1
# (TEST-NET-1, never a local address) the listen then fails, status 1, not 2 (bad usage).
out=$("$B" transport --bytes 2G --addr 192.0.2.1 2>&1); rc=$?
[ $rc = 1 ] && grep -q '^transport bench: backend tcp, 2147483648 bytes x 3 passes' <<<"$out" \
    && ok "transport: --bytes 2G is 2147483648 bytes" || bad "transport --bytes 2G: rc=$rc $out"
out=$("$B" transport --bytes 16M --slot 256K --iters 50 --passes 1 2>&1); rc=$?
[ $rc = 0 ] && grep -q 'slot 262144,' <<<"$out" && grep -q '^result transport backend=tcp bytes=16777216 ' <<<"$out" \
    && ok "transport: a run with --bytes 16M --slot 256K" || bad "transport 16M run: rc=$rc $out"
for arg in 2X -1 1.5G "" 16EB; do
    out=$("$B" transport --bytes "$arg" 2>&1); rc=$?
    [ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "--bytes '$arg' is not a size" <<<"$out" \
        && ok "transport: --bytes '$arg' refused in one line" || bad "transport --bytes '$arg': rc=$rc $out"
done
out=$("$B" transport --bytes 128G 2>&1); rc=$?
[ $rc = 2 ] && grep -q -- "--bytes '128G' is above 64G" <<<"$out" && ok "transport: --bytes above the limit" \
    || bad "transport --bytes 128G: rc=$rc $out"
out=$("$B" transport --bytes 99999999999T 2>&1); rc=$?
[ $rc = 2 ] && grep -q -- "--bytes '99999999999T' is above 64G" <<<"$out" && ok "transport: --bytes overflowing 64 bits" \
    || bad "transport --bytes overflow: rc=$rc $out"
out=$("$B" transport --slot 1K 2>&1); rc=$?
[ $rc = 2 ] && grep -q -- "--slot '1K' is below 64K" <<<"$out" && ok "transport: --slot below 64K" || bad "transport --slot: rc=$rc $out"
out=$("$B" placement --jobs 50 --nodes 4 --mem-mib 1G 2>&1); rc=$?
[ $rc = 0 ] && grep -q 'mean memory 1024 MiB' <<<"$out" && ok "placement: --mem-mib 1G" || bad "placement --mem-mib 1G: rc=$rc $out"
out=$("$B" placement --jobs 50 --nodes 4 --mem-mib 256 2>&1); rc=$?
[ $rc = 0 ] && grep -q 'mean memory 256 MiB' <<<"$out" && ok "placement: a plain --mem-mib counts MiB" || bad "placement --mem-mib 256: rc=$rc $out"
out=$("$B" placement --mem-mib 2X 2>&1); rc=$?
[ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "--mem-mib '2X' is not a size" <<<"$out" \
    && ok "placement: bad --mem-mib" || bad "placement --mem-mib 2X: rc=$rc $out"
out=$("$B" migrate --backend carrier-pigeon 2>&1); rc=$?
[ $rc = 2 ] && grep -q "not available" <<<"$out" && ok "migrate: unknown backend" || bad "migrate backend: rc=$rc $out"
# CRIU figures only from a CRIU that ran in this run: none without --criu, none from one that
# cannot run (a stand-in that fails its check), a one-line error for a path that is not a program
out=$("$B" migrate --sizes 4M,8M --backend tcp 2>&1); rc=$?
[ $rc = 0 ] && ! grep -qi "criu" <<<"$out" && ok "migrate: no CRIU figure without --criu" || bad "migrate without --criu: rc=$rc $out"
out=$("$B" migrate --sizes 4M,8M --backend tcp --criu /bin/false 2>&1); rc=$?
[ $rc = 0 ] && grep -q "^criu: /bin/false cannot run here (criu check: no output); no CRIU figure" <<<"$out" \
    && grep -q "^result migrate " <<<"$out" && ! grep -q "^result criu" <<<"$out" \
    && ok "migrate: a CRIU that cannot run is said once, no CRIU figure" || bad "migrate --criu /bin/false: rc=$rc $out"
out=$("$B" migrate --criu /nonexistent/criu 2>&1); rc=$?
[ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "--criu /nonexistent/criu: No such file" <<<"$out" \
    && ok "migrate: --criu that is no program" || bad "migrate --criu missing: rc=$rc $out"
for args in "--repeat 0" "--lat-iters x" "--bogus"; do # refused before any lab is built
    out=$("$B" mpi $args 2>&1); rc=$?
    [ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "^mosbench mpi: " <<<"$out" \
        && ok "mpi: '$args' refused in one line" || bad "mpi $args: rc=$rc $out"
done
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
