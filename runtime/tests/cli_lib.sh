# Shared by the command-line script tests: ok/bad counters and a one-line-error check.
fails=0; passes=0
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
# check_err DESC EXPECTED_RC PATTERN CMD ARGS...: CMD fails with that status and exactly one
# line on stderr containing PATTERN.
check_err() {
    local desc=$1 want=$2 pat=$3; shift 3
    local out rc
    out=$("$@" 2>&1 >/dev/null); rc=$?
    if [ "$rc" = "$want" ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "$pat" <<<"$out"; then ok "$desc"
    else bad "$desc: rc=$rc out=$out"; fi
}
finish() { echo "$passes passed, $fails failed"; [ "$fails" = 0 ]; }
