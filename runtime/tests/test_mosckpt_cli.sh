#!/bin/bash
# mosckpt: bad usage and bad input get one line and a non-zero status, never a crash.
set -u
CK=$MOS_BIN/mosckpt
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
passes=0; fails=0
check() { # check NAME EXPECTED-RC PATTERN CMD...
    local name=$1 want=$2 pat=$3; shift 3
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" = "$want" ] && grep -q -- "$pat" <<<"$out" && [ "$(wc -l <<<"$out")" -le 1 ]; then
        passes=$((passes+1)); echo "ok: $name"
    else
        fails=$((fails+1)); echo "FAIL: $name (rc=$rc, want $want, output: $out)"
    fi
}
check "no command" 2 "no command" "$CK"
check "unknown command" 2 "unknown command" "$CK" frobnicate
check "dump without file" 2 "dump needs PID FILE" "$CK" dump 123
check "dump bad pid" 2 "dump needs PID FILE" "$CK" dump 12x "$T/img"
check "dump bad flag" 2 "dump needs" "$CK" dump 1 "$T/img" --bogus
check "dump no such pid" 1 "No such process" "$CK" dump 999999999 "$T/img"
check "check no such pid" 1 "No such process" "$CK" check 999999999
check "restore missing file" 1 "cannot open" "$CK" restore "$T/none"
printf 'not an image at all, just some text that is long enough\n' > "$T/text"
check "restore a text file" 1 "corrupt image: unknown record magic" "$CK" restore "$T/text"
check "info a text file" 1 "corrupt image" "$CK" info "$T/text"
: > "$T/empty"
check "restore an empty file" 1 "image ends early" "$CK" restore "$T/empty"
check "info bad flag" 2 "info needs FILE" "$CK" info "$T/text" --xml
check "receive without --listen" 2 "receive needs --listen PORT" "$CK" receive 7000
check "receive bad port" 1 "cannot listen on port 99999" "$CK" receive --listen 99999
check "send no port" 1 "cannot connect to nohost" "$CK" send 1 nohost
check "send refused" 1 "cannot connect" "$CK" send 1 127.0.0.1:1
if "$CK" --help | grep -q "mosckpt receive --listen PORT"; then passes=$((passes+1)); echo "ok: help"
else fails=$((fails+1)); echo "FAIL: help"; fi
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
