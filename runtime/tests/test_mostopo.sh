#!/bin/bash
# mostopo on this machine, on a recorded XML machine (golden text) and on synthetic strings;
# JSON parses and agrees; XML reads back; bad input gives one line and a non-zero status.
set -u
T=$MOS_BIN/mostopo
FIX=$MOS_SRC/placement/tests/fixtures
. "$(dirname "$0")/cli_lib.sh"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

out=$("$T") && grep -q "^machine: .* $(nproc) PUs, .*(this system)$" <<<"$out" && grep -q '^numa 0: os ' <<<"$out" \
    && ok "this machine: $(head -1 <<<"$out")" || bad "this machine: $out"

cat > "$tmp/golden" <<'G'
machine: 2 packages, 4 NUMA nodes, 16 cores, 32 PUs, 4096 MiB
numa 0: os 0, cpus 0-7 (8 PUs), 1024 MiB, 1024 MiB free
numa 1: os 1, cpus 8-15 (8 PUs), 1024 MiB, 1024 MiB free
numa 2: os 2, cpus 16-23 (8 PUs), 1024 MiB, 1024 MiB free
numa 3: os 3, cpus 24-31 (8 PUs), 1024 MiB, 1024 MiB free
distances (latency matrix):
  0:  10  12  20  22
  1:  12  10  22  20
  2:  20  22  10  12
  3:  22  20  12  10
nic mlx5_0: pci 0000:80:00.0, rdma, numa 3
nic ib0: pci 0000:80:00.0, net, numa 3
G
"$T" --input "$FIX/numa4-nic.xml" > "$tmp/out" && diff -u "$tmp/golden" "$tmp/out" \
    && ok "recorded 4-NUMA machine with an HCA: golden text" || bad "recorded machine text differs"

if "$T" --input "$FIX/numa4-nic.xml" --json > "$tmp/j" && python3 - "$tmp/j" <<'P'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["pus"] == 32 and len(j["numa"]) == 4 and j["distance_matrix"] is True
assert j["numa"][3]["distances"] == [22, 20, 12, 10]
assert [n["numa"] for n in j["nics"]] == [3, 3] and j["nics"][0]["rdma"] is True
P
then ok "json report"; else bad "json report: $(cat "$tmp/j")"; fi

"$T" --synthetic "pack:4 numa:2 core:8 pu:2" --xml > "$tmp/s.xml" \
    && "$T" --input "$tmp/s.xml" > "$tmp/a" && "$T" --synthetic "pack:4 numa:2 core:8 pu:2" > "$tmp/b" \
    && diff -q "$tmp/a" "$tmp/b" >/dev/null && grep -q '^machine: 4 packages, 8 NUMA nodes, 64 cores, 128 PUs' "$tmp/a" \
    && ok "synthetic -> xml -> input round trip" || bad "round trip: $(cat "$tmp/a" "$tmp/b")"

"$T" --input "$FIX/numa2-nonic.xml" | grep -q '^nic: none with PCI locality$' && ok "no NIC reported" || bad "no NIC line"

out=$("$T" --input "$FIX/numa4-rootnic.xml" | grep '^nic ')
[ "$out" = "nic mlx5_0: pci 0000:80:00.0, rdma, no NUMA locality
nic ib0: pci 0000:80:00.0, net, no NUMA locality" ] && ok "NIC under the machine root: no locality" || bad "root NIC: $out"

check_err "bad synthetic string" 1 "bad synthetic topology 'pack:x'" "$T" --synthetic "pack:x"
check_err "missing xml" 1 "/nonexistent.xml" "$T" --input /nonexistent.xml
printf '<topology version="2.0"><object type=' > "$tmp/trunc.xml"
check_err "truncated xml" 1 "trunc.xml" "$T" --input "$tmp/trunc.xml"
check_err "bad option" 2 "bad or incomplete option '--frobnicate'" "$T" --frobnicate
check_err "missing argument" 2 "bad or incomplete option '--input'" "$T" --input
finish
