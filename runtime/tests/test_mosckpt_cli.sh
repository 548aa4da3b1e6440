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
check "receive without --listen" 2 "receive needs --listen \[ADDR:\]PORT" "$CK" receive 7000
check "receive bad port" 2 "receive --listen takes PORT" "$CK" receive --listen 99999
check "receive bad address" 2 "receive --listen takes PORT" "$CK" receive --listen 127.0.0.1:
check "send bad flag" 2 "send needs PID HOST:PORT" "$CK" send 1 127.0.0.1:1 --key

# send and receive prove the cluster key: none given and none in the config is one line, 1
printf '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n' > "$T/key"
printf 'ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n' > "$T/other.key"
chmod 600 "$T/key" "$T/other.key"
printf '[nodes]\nme = 127.0.0.1\n' > "$T/nokey.conf"
check "receive, no config: needs the key" 1 "receive needs the cluster key" \
    env MOS_CONF="$T/none.conf" timeout 10 "$CK" receive --listen 1
check "receive, config without key_file" 1 "has no key_file" \
    env MOS_CONF="$T/nokey.conf" timeout 10 "$CK" receive --listen 1
check "send, config without key_file" 1 "send needs the cluster key" \
    env MOS_CONF="$T/nokey.conf" timeout 10 "$CK" send 1 127.0.0.1:1
check "receive, unreadable --key" 1 "cannot open cluster key" \
    timeout 10 "$CK" receive --listen 1 --key "$T/none.key"
check "send no port" 1 "bad endpoint 'nohost'" "$CK" send 1 nohost --key "$T/key"
check "send refused" 1 "connect to 127.0.0.1:1: Connection refused" "$CK" send 1 127.0.0.1:1 --key "$T/key"
if "$CK" --help | grep -q "mosckpt receive --listen \[ADDR:\]PORT \[--key FILE\]"; then
    passes=$((passes+1)); echo "ok: help"
else fails=$((fails+1)); echo "FAIL: help"; fi

# receive --listen PORT binds loopback, not every address; a sender with another key is refused
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 60 "$CK" receive --listen "$port" --key "$T/key" > "$T/recv.out" 2> "$T/recv.err" & recv=$!
for _ in $(seq 100); do ss -Htln "sport = :$port" | grep -q . && break; sleep 0.1; done
bound=$(ss -Htln "sport = :$port" | awk '{print $4}')
[ "$bound" = "127.0.0.1:$port" ] && { passes=$((passes+1)); echo "ok: --listen PORT binds 127.0.0.1 only"; } \
    || { fails=$((fails+1)); echo "FAIL: --listen PORT bound '$bound'"; }
sleep 60 < /dev/null > /dev/null 2>&1 & victim=$!
out=$("$CK" send $victim "127.0.0.1:$port" --key "$T/other.key" --close-other-fds 2>&1); rc=$?
wait $recv; rrc=$?
if [ "$rc" = 1 ] && [ "$rrc" = 1 ] && kill -0 $victim 2>/dev/null && grep -q "key" "$T/recv.err" \
   && [ ! -s "$T/recv.out" ]; then passes=$((passes+1)); echo "ok: another key: both ends refuse, nothing sent, the process runs on"
else fails=$((fails+1)); echo "FAIL: another key: send rc=$rc ($out), receive rc=$rrc ($(cat "$T/recv.err"))"; fi
kill $victim; wait $victim 2>/dev/null

# info of a real image: its strings and tables belong to the info (read back after the image's
# metadata is gone)
sleep 60 < /dev/null > /dev/null 2>&1 & victim=$!
for _ in $(seq 50); do [ "$(readlink /proc/$victim/exe)" != "$(readlink /proc/$$/exe)" ] && break; sleep 0.05; done
"$CK" dump $victim "$T/sleep.img" --leave-running --close-other-fds > /dev/null 2>&1
kill $victim; wait $victim 2>/dev/null
if "$CK" info "$T/sleep.img" --json | python3 -c '
import json, sys, os
i = json.load(sys.stdin)
assert os.path.basename(i["exe"]) == "sleep", i["exe"]
assert i["cwd"] == os.getcwd(), i["cwd"]
assert any(v["path"].endswith("/sleep") for v in i["vmas"]), i["vmas"]
assert any(v["kind"] == "vdso" for v in i["vmas"])
assert [f["path"] for f in i["fds"] if f["fd"] in (0, 1, 2)] == ["/dev/null"] * 3, i["fds"]
'; then passes=$((passes+1)); echo "ok: info --json of a dumped sleep"
else fails=$((fails+1)); echo "FAIL: info --json: $("$CK" info "$T/sleep.img" --json 2>&1 | head -c 600)"; fi
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
