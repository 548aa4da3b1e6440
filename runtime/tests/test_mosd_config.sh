#!/bin/bash
# mosd --check-config: finds this host in a good config, and refuses bad ones with one line.
set -u
MOSD=$MOS_BIN/mosd
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
check() { # check NAME EXPECTED-RC PATTERN CMD...
    local name=$1 want=$2 pat=$3; shift 3
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" = "$want" ] && grep -q -- "$pat" <<<"$out" && [ "$(wc -l <<<"$out")" -le 1 ]; then
        passes=$((passes+1)); echo "ok: $name"
    else
        fails=$((fails+1)); echo "FAIL: $name (rc=$rc, want $want, output: $out)"
    fi
}
printf '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n' > "$T/key"
chmod 600 "$T/key"
printf '[cluster]\nkey_file = %s\n[nodes]\nfar = 198.51.100.1\nme = 127.0.0.1\n' "$T/key" > "$T/good.conf"
check "finds itself" 0 "node me 127.0.0.1 of 2" "$MOSD" --config "$T/good.conf" --check-config
check "MOS_CONF is read" 0 "node me" env MOS_CONF="$T/good.conf" "$MOSD" --check-config
printf '[nodes]\nme = 127.0.0.1\n' > "$T/alone.conf"
check "no key: one-node mode said" 0 "key none (one-node mode: no port" "$MOSD" --config "$T/alone.conf" --check-config
printf '[cluster]\nkey_file = %s\n[nodes]\nfar = 198.51.100.1\nfar2 = 198.51.100.2\n' "$T/key" > "$T/notme.conf"
check "not in the list" 1 "none of the 2 nodes" "$MOSD" --config "$T/notme.conf" --check-config
printf '[cluster]\nbogus = 1\n' > "$T/bad.conf"
check "unknown setting" 1 "bad.conf:2: unknown setting 'bogus'" "$MOSD" --config "$T/bad.conf" --check-config
for bad in 9771 localhost:9771 127.0.0.1:0 127.0.0.1:70000 '[::1]:' 127.0.0.1:97x1; do
    printf '[cluster]\nkey_file = %s\nmetrics_listen = %s\n[nodes]\nme = 127.0.0.1\n' "$T/key" "$bad" > "$T/m.conf"
    check "metrics_listen $bad refused" 1 "m.conf: metrics_listen '" "$MOSD" --config "$T/m.conf" --check-config
done
printf '[cluster]\nkey_file = %s\nmetrics_listen = [::1]:9771\n[nodes]\nme = 127.0.0.1\n' "$T/key" > "$T/m.conf"
check "metrics_listen [::1]:9771 taken" 0 "node me" "$MOSD" --config "$T/m.conf" --check-config
check "missing file" 1 "cannot open" "$MOSD" --config "$T/none.conf" --check-config
chmod 644 "$T/key"
check "open key refused" 1 "readable by others" "$MOSD" --config "$T/good.conf" --check-config
check "bad option" 2 "bad or incomplete option" "$MOSD" --frobnicate
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
