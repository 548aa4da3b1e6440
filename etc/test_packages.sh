#!/bin/bash
# Debian packages: a Release tree for /usr is built, `cpack -G DEB` makes mos and mos-dev,
# lintian finds no error in them, dpkg installs them on this machine (root, no container: CI
# machines are disposable) and the commands work from /usr, a program links against mos-dev
# through pkg-config, `dpkg -r` keeps only the edited conffile and `dpkg -P` leaves nothing.
set -u
SRC=$MOS_SRC
passes=0; fails=0
ok()  { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
end() { echo "$passes passed, $fails failed"; [ "$fails" = 0 ]; exit; }
[ "$(id -u)" = 0 ] || { bad "must run as root (dpkg -i)"; end; }
for tool in dpkg-deb lintian dpkg-shlibdeps cpack pkg-config; do
    command -v $tool > /dev/null || { bad "precondition: $tool missing (./dev.sh deps installs it)"; end; }
done
for p in mos mos-dev mos-slurm; do
    if dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -q installed; then
        bad "precondition: package $p is already installed here; this test installs and purges it"; end
    fi
done
T=$(mktemp -d)
trap 'dpkg -P mos-slurm mos-dev mos > /dev/null 2>&1; rm -rf "$T"' EXIT

cmake -S "$SRC" -B "$T/b" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DMOS_TESTS=OFF \
    > "$T/cmake.log" 2>&1 && cmake --build "$T/b" -j"$(nproc)" > "$T/build.log" 2>&1 \
    || { bad "Release build for /usr: $(tail -5 "$T/build.log" "$T/cmake.log")"; end; }
(cd "$T/b" && cpack -G DEB -B "$T/pk" > "$T/cpack.log" 2>&1) || { bad "cpack: $(tail -5 "$T/cpack.log")"; end; }
MOS=$(ls "$T"/pk/mos_*.deb 2>/dev/null); DEV=$(ls "$T"/pk/mos-dev_*.deb 2>/dev/null)
[ -f "$MOS" ] && [ -f "$DEV" ] && ok "cpack made $(basename "$MOS") and $(basename "$DEV")" || { bad "no packages: $(ls "$T/pk")"; end; }

# mos-slurm is made where libslurm-dev is installed (the plugin is built)
SLURM=$(ls "$T"/pk/mos-slurm_*.deb 2>/dev/null)
[ -f /usr/include/slurm/spank.h ] && { [ -f "$SLURM" ] && ok "cpack made $(basename "$SLURM")" \
    || bad "libslurm-dev is here but no mos-slurm package: $(ls "$T/pk")"; }
lintian --no-tag-display-limit "$MOS" "$DEV" $SLURM > "$T/lintian.log" 2>&1
errors=$(grep -c '^E:' "$T/lintian.log")
[ "$errors" = 0 ] && ok "lintian: no errors ($(grep -c '^W:' "$T/lintian.log") warnings)" \
    || bad "lintian errors: $(grep '^E:' "$T/lintian.log" | head -5 | tr '\n' ' ')"

dpkg -i "$MOS" "$DEV" $SLURM > "$T/dpkg.log" 2>&1 || { bad "dpkg -i: $(tail -3 "$T/dpkg.log")"; end; }
ok "dpkg -i installs them"
if [ -n "$SLURM" ]; then
    so=$(dpkg -L mos-slurm | grep '/slurm-wlm/mos_spank.so$')
    [ -n "$so" ] && nm -D "$so" | grep -q ' T slurm_spank_task_init$' \
        && grep -q "^optional $so mosrun=/usr/bin/mosrun" /usr/share/doc/mos-slurm/examples/plugstack.conf \
        && ok "mos-slurm: $so with its task_init, the plugstack.conf line names it" \
        || bad "mos-slurm: plugin '$so' $(cat /usr/share/doc/mos-slurm/examples/plugstack.conf 2>&1)"
fi
/usr/sbin/mosd --help-config | grep -q '^#* *metrics_listen' && ok "/usr/sbin/mosd runs" || bad "mosd --help-config"
out=$(MOS_CONF=/nonexistent setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/mosrun /bin/echo hi 2>&1)
grep -q '^hi$' <<<"$out" && ok "/usr/bin/mosrun runs a program (no mosd: unmanaged)" || bad "mosrun: $out"
[ -x /usr/libexec/mos/mos-husk ] && ok "the husk is in /usr/libexec/mos" || bad "no husk"
grep -q '^ExecStart=/usr/sbin/mosd' /usr/lib/systemd/system/mosd.service && ok "the unit runs /usr/sbin/mosd" \
    || bad "unit: $(grep ExecStart /usr/lib/systemd/system/mosd.service)"
dpkg-query -W -f='${Conffiles}' mos | grep -q '/etc/mos/mos.conf' && ok "/etc/mos/mos.conf is a conffile" \
    || bad "mos.conf is no conffile"
cat > "$T/use.c" <<'C'
#include <mos/status.h>
#include <stdio.h>
int main(void) { puts(mos_strerror(MOS_E_CONFIG)); return 0; }
C
if cc "$T/use.c" -o "$T/use" $(pkg-config --cflags --libs mos) 2> "$T/cc.log" && "$T/use" > /dev/null; then
    ok "a program builds against mos-dev with pkg-config mos, and runs"
else
    bad "mos-dev: $(head -3 "$T/cc.log")"
fi

echo "# site edit" >> /etc/mos/mos.conf
files=$(dpkg -L mos mos-dev ${SLURM:+mos-slurm} | sort -u)
dpkg -r ${SLURM:+mos-slurm} mos-dev mos > "$T/dpkg.log" 2>&1 || bad "dpkg -r: $(tail -3 "$T/dpkg.log")"
[ ! -e /usr/sbin/mosd ] && grep -q '# site edit' /etc/mos/mos.conf && ok "dpkg -r removes the programs, keeps the edited conffile" \
    || bad "after dpkg -r: mosd $(ls /usr/sbin/mosd 2>&1), conf $(ls /etc/mos 2>&1)"
dpkg -P mos > "$T/dpkg.log" 2>&1 || bad "dpkg -P: $(tail -3 "$T/dpkg.log")"
left=$(while read -r f; do [ -f "$f" ] && echo "$f"; done <<<"$files")
[ -z "$left" ] && [ ! -e /etc/mos/mos.conf ] && ok "dpkg -P leaves no file behind" || bad "left after purge: $left $(ls /etc/mos 2>/dev/null)"
end
