# The common start of the runtime's lab tests, sourced by each. lab_init PREFIX sets B (the
# binaries), LAB (mos-lab), MOS_LAB_NAME (PREFIX + pid: labs of concurrent tests never meet),
# W (a work directory the test user may write), N1..N3 (node names), AS_USER (run as nobody),
# the ok/bad counters and an EXIT trap that kills leftover jobs, takes the lab down and removes
# W ($MOS_TEST_KEEP keeps it). Each test ends with lab_result.
lab_init() {
    B=$MOS_BIN
    LAB=$MOS_SRC/tests/lab/mos-lab
    export MOS_LAB_NAME=$1$$
    W=$(mktemp -d "/tmp/mos-$1.XXXXXX")
    chmod 777 "$W"
    passes=0; fails=0
    AS_USER=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    N1=${MOS_LAB_NAME}1; N2=${MOS_LAB_NAME}2; N3=${MOS_LAB_NAME}3
    trap lab_cleanup EXIT
}
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
lab_cleanup() {
    jobs -p | xargs -r kill -9 2>/dev/null
    "$LAB" down >/dev/null 2>&1
    [ -n "${MOS_TEST_KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
# lab_up N [mos-lab options]: the lab, or the whole test fails here
lab_up() { "$LAB" up "$@" >/dev/null || { echo "FAIL: lab up"; echo "0 passed, 1 failed"; exit 1; }; }
# on I CMD...: CMD on node I (its namespace and CPU cap)
on() { local n=$1; shift; "$LAB" exec "$n" "$@"; }
# wait_mosd I...: until the mosd of each node serves its socket (5 s each at most)
wait_mosd() {
    local n
    for n in "$@"; do
        for _ in $(seq 50); do
            [ -S "/run/mos-lab/$MOS_LAB_NAME/mosd-${MOS_LAB_NAME}$n.sock" ] && break
            sleep 0.1
        done
    done
}
# wait_until SECONDS CMD...: until CMD succeeds (polled every 50 ms); its status at the end
wait_until() {
    local limit=$(( $1 * 20 )) i; shift
    for ((i = 0; i < limit; i++)); do "$@" && return 0; sleep 0.05; done
    "$@"
}
# wait_view I COUNT: until node I's mosd has news of COUNT nodes alive, itself included (20 s
# at most; the balancer decides nothing before it hears of the others, slower on a loaded host)
wait_view() {
    wait_until 20 eval "[ \$(on $1 \"\$B/mosmon\" --once 2>/dev/null | awk '\$3 == \"alive\"' | wc -l) -ge $2 ]"
}
# registered PID [NODE]: node NODE's mosd (default 1) lists PID as a job
registered() { on "${2:-1}" "$B/mosps" 2>/dev/null | awk -v p="$1" 'NR > 1 && $1 == p { f = 1 } END { exit !f }'; }
lab_result() { echo "$passes passed, $fails failed"; [ "$fails" = 0 ]; }
