# Helpers for the transport's script tests (sourced). Needs MOS_BIN.
CHK=${MOS_BIN:?MOS_BIN not set}/mos-transport-check
passes=0; fails=0
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
finish() { echo "$passes passed, $fails failed"; [ "$fails" = 0 ]; }

# A 0600 key file of 64 hex digits.
make_key() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$1"; echo >> "$1"; chmod 600 "$1"; }

# start_server OUTFILE [PREFIX...] -- ARGS: run "PREFIX $CHK server ARGS" in the background,
# wait until it listens, set SRV_PID and SRV_PORT.
start_server() {
    local out=$1 i; shift
    local prefix=()
    while [ "$1" != "--" ]; do prefix+=("$1"); shift; done; shift
    : > "$out"   # empty now: the child truncates it only when it gets to run
    "${prefix[@]}" "$CHK" server "$@" >> "$out" 2>&1 &
    SRV_PID=$!
    for i in $(seq 100); do
        SRV_PORT=$(sed -n 's/^server: listening on port \([0-9]*\)$/\1/p' "$out" 2>/dev/null)
        [ -n "$SRV_PORT" ] && return 0
        kill -0 $SRV_PID 2>/dev/null || break
        sleep 0.1
    done
    echo "server did not start: $(cat "$out")"; return 1
}

# wait_server NAME: the server exits 0 within 60 s.
wait_server() {
    local i
    for i in $(seq 600); do kill -0 $SRV_PID 2>/dev/null || break; sleep 0.1; done
    if kill -0 $SRV_PID 2>/dev/null; then kill -KILL $SRV_PID; bad "$1: server hung"; return 1; fi
    wait $SRV_PID; local rc=$?
    [ $rc = 0 ] && return 0
    bad "$1: server exit $rc"; return 1
}

# count PATTERN FILE: lines matching
count() { grep -c -- "$1" "$2"; }
