#!/bin/bash
# cmake --install puts binaries, public headers, the systemd unit and the example config in
# place (into a scratch DESTDIR), and never overwrites an existing /etc/mos/mos.conf. Every
# installed header compiles on its own, and private headers (gossip's core and wire layout)
# stay out.
set -u
BUILD=$1
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
passes=0; fails=0
want() { if [ -e "$D/$1" ]; then passes=$((passes+1)); echo "ok: $1"; else fails=$((fails+1)); echo "FAIL: missing $1"; fi; }
DESTDIR=$D cmake --install "$BUILD" --prefix /usr/local >/dev/null || { echo "FAIL: install"; echo "0 passed, 1 failed"; exit 1; }
want usr/local/sbin/mosd
want usr/local/bin/mosbench
want usr/local/bin/mos-lab
want usr/local/include/mos/status.h
want usr/local/include/mos/transport.h
want usr/local/lib/systemd/system/mosd.service
want etc/mos/mos.conf
want usr/local/include/mos/gossip.h
want usr/local/include/mos/size.h
for private in gossip_core.h gossip_wire.h probe_parse.h gossip_priv.h; do
    if [ -e "$D/usr/local/include/mos/$private" ]; then
        fails=$((fails+1)); echo "FAIL: private header mos/$private is installed"
    else
        passes=$((passes+1)); echo "ok: mos/$private not installed"
    fi
done
n_headers=0
for h in "$D"/usr/local/include/mos/*.h; do
    name=mos/$(basename "$h")
    n_headers=$((n_headers+1))
    printf '#include "%s"\n' "$name" > "$D/alone.c"
    if out=$("${CC:-cc}" -std=gnu11 -Wall -Wextra -Werror -fsyntax-only -I"$D/usr/local/include" \
             "$D/alone.c" 2>&1); then
        passes=$((passes+1)); echo "ok: $name compiles alone"
    else
        fails=$((fails+1)); echo "FAIL: $name does not compile alone: $(head -3 <<<"$out")"
    fi
done
[ "$n_headers" -ge 10 ] && { passes=$((passes+1)); echo "ok: $n_headers headers installed"; } \
    || { fails=$((fails+1)); echo "FAIL: only $n_headers headers installed"; }
grep -q '^ExecStart=/usr/local/sbin/mosd' "$D/usr/local/lib/systemd/system/mosd.service" \
    && { passes=$((passes+1)); echo "ok: unit runs the installed mosd"; } \
    || { fails=$((fails+1)); echo "FAIL: unit ExecStart"; }
# a restart must not kill guests' supervisors nor remove the job table (test_restart_lab)
grep -qx 'KillMode=process' "$D/usr/local/lib/systemd/system/mosd.service" \
    && grep -qx 'RuntimeDirectoryPreserve=yes' "$D/usr/local/lib/systemd/system/mosd.service" \
    && { passes=$((passes+1)); echo "ok: unit: KillMode=process, runtime directory kept"; } \
    || { fails=$((fails+1)); echo "FAIL: unit KillMode/RuntimeDirectoryPreserve"; }
echo "# site edit" >> "$D/etc/mos/mos.conf"
DESTDIR=$D cmake --install "$BUILD" --prefix /usr/local >/dev/null
grep -q '# site edit' "$D/etc/mos/mos.conf" && [ -e "$D/etc/mos/mos.conf.example" ] \
    && { passes=$((passes+1)); echo "ok: existing mos.conf kept"; } \
    || { fails=$((fails+1)); echo "FAIL: existing mos.conf replaced"; }
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
