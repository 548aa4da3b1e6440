#!/bin/sh
# Guest script for ../shared/rxe-lab (run.sh: one guest, loopback; run2.sh: two guests).
# Runs mos-transport-check with the verbs backend forced, so a silent fall back to tcp fails.
#   rxe_transport.sh check [MIB]        the test suite
#   rxe_transport.sh bench ARGS...      mosbench transport inside the guest (see bench/)
#   rxe_transport.sh migrate ARGS...    mosbench migrate over verbs (needs mos-husk too)
# Needs (RXE_BINS) mos-transport-check, test_transport / mosbench, (RXE_FILES) cluster.key.
. /lab/lib.sh
MODE=${1:-check}; shift
CHK=mos-transport-check; KEY=/lab/cluster.key
IP=$RXE_IP; MIB=${1:-4}
[ "$MODE" = check ] || MIB=4
echo "mos rxe guest: mode=$MODE ip=$IP role=${RXELAB_role:-single} gid=$RXE_GID"
ulimit -l unlimited 2>/dev/null

if [ "$MODE" = client-retry ]; then
    # Two guests: retry while the server guest is not listening yet.
    n=0
    until timeout 200 $CHK client "$@" --backend verbs --key $KEY > /tmp/cli.out 2>&1; do
        grep -q "Connection refused" /tmp/cli.out || { cat /tmp/cli.out; exit 1; }
        n=$((n+1)); [ $n -gt 60 ] && { cat /tmp/cli.out; exit 1; }; sleep 1
    done
    cat /tmp/cli.out; exit 0
fi
if [ "$MODE" = bench ]; then
    single mosbench_transport 500 "mosbench transport $*"
    summary; exit $?
fi
if [ "$MODE" = migrate ]; then
    # A migration as mosds make it, over verbs on rxe0 (forced: no silent tcp), pages in bulk;
    # then the same with the pages in control messages, side by side.
    single mosbench_migrate 600 "MOS_TRANSPORT=verbs mosbench migrate --addr $IP $* > /tmp/mig.out 2>&1;
          rc=\$?; cat /tmp/mig.out; [ \$rc = 0 ] && grep -q 'backend=transport via=verbs' /tmp/mig.out"
    summary; exit $?
fi

if [ -z "${RXELAB_role:-}" ]; then
    # One guest: server and client both on rxe0 (the client dials the guest's own address).
    # The conformance suite (cmocka), its verbs group against rxe0.
    single verbs_conformance 300 "MOS_TEST_VERBS_ADDR=$IP test_transport"
    pair verbs_loopback 240 "$CHK server $IP:7300 --backend verbs --key $KEY" \
         "$CHK client $IP:7300 --backend verbs --key $KEY --mib $MIB --echo 200"
    pair verbs_2qps_process 240 "$CHK server $IP:7301 --backend verbs --key $KEY --into-process" \
         "$CHK client $IP:7301 --backend verbs --key $KEY --mib $MIB --from-process --qps 2 --slot 262144 --slots 8 --echo 50"
    # A migration as mosds make it (mosbench migrate --backend transport), verbs forced: the
    # copy's pages checked, every page of the image went in bulk (pages == bulk_pages).
    single verbs_migrate 240 "MOS_TRANSPORT=verbs mosbench migrate --addr $IP --backend transport --sizes 1M,4M --repeat 1 > /tmp/mig.out 2>&1;
          rc=\$?; cat /tmp/mig.out; [ \$rc = 0 ] && grep -q 'backend=transport via=verbs' /tmp/mig.out &&
          awk '/^ +[0-9]+M / { n++; if (\$2 != \$9 || \$9 == 0) bad = 1 } END { exit !(n == 2 && !bad) }' /tmp/mig.out"
    pair verbs_wrong_key 120 "$CHK server $IP:7302 --backend verbs --key $KEY --expect-fail 1" \
         "! $CHK client $IP:7302 --backend verbs --key /lab/other.key --mib 1"
    pair auto_picks_verbs 120 "$CHK server $IP:7303 --key $KEY" \
         "$CHK client $IP:7303 --key $KEY --mib 1 --echo 10 | grep 'with verbs'"
    # The server dies mid-run: the sender notices (TCP stream closed, QP errors) and fails
    # with one clear error instead of hanging or crashing.
    pair verbs_peer_vanishes 120 "$CHK server $IP:7305 --backend verbs --key $KEY > /tmp/vs.out 2>&1 & p=\$!;
          i=0; until grep -q receiving /tmp/vs.out || [ \$i -gt 300 ]; do sleep 0.1; i=\$((i+1)); done;
          kill -9 \$p; cat /tmp/vs.out; grep -q receiving /tmp/vs.out" \
         "$CHK client $IP:7305 --backend verbs --key $KEY --mib 64 --echo 0 > /tmp/vc.out 2>&1; rc=\$?; cat /tmp/vc.out;
          [ \$rc = 1 ] && grep -q 'FAIL: bulk send' /tmp/vc.out"
    # A device is up, but 127.0.0.1 has no RDMA route: auto falls back to tcp and says why.
    pair fallback_no_route 120 "$CHK server 127.0.0.1:7304 --key $KEY" \
         "$CHK client 127.0.0.1:7304 --key $KEY --mib 1 --echo 5 > /tmp/fb.out 2>&1; cat /tmp/fb.out;
          grep -q 'with tcp' /tmp/fb.out && grep -Eq 'using tcp: (address|route) resolution failed' /tmp/fb.out"
    # The client may lock only 64 KiB (and lacks CAP_IPC_LOCK, which would lift the limit):
    # it says "ulimit -l", the server "peer without verbs"; both use tcp.
    pair fallback_ulimit 120 "$CHK server $IP:7307 --key $KEY > /tmp/us.out 2>&1; rc=\$?; cat /tmp/us.out;
          [ \$rc = 0 ] && grep -q 'using tcp: peer without verbs: ulimit -l is 64 KiB' /tmp/us.out" \
         "ulimit -l 64; $CHK client $IP:7307 --key $KEY --mib 1 --echo 5 --no-ipc-lock > /tmp/uc.out 2>&1; cat /tmp/uc.out;
          grep -q 'with tcp' /tmp/uc.out && grep -q 'using tcp: ulimit -l is 64 KiB' /tmp/uc.out"
    # The link under rxe0 goes down: the port is no longer ACTIVE, auto falls back to tcp
    # (over 127.0.0.1) and both sides say "RDMA port down"; then the link comes back.
    ip link set eth0 down; sleep 1
    pair fallback_port_down 120 "$CHK server 127.0.0.1:7306 --key $KEY" \
         "$CHK client 127.0.0.1:7306 --key $KEY --mib 1 --echo 5 > /tmp/pd.out 2>&1; cat /tmp/pd.out;
          grep -q 'with tcp' /tmp/pd.out && grep -q 'using tcp: RDMA port down' /tmp/pd.out"
    ip link set eth0 up
else
    # Two guests: A serves, B connects (retrying until A listens).
    SIP=$RXELAB_server
    if [ "$RXELAB_role" = server ]; then
        single verbs_two_guests 300 "$CHK server $SIP:7300 --backend verbs --key $KEY --sessions 2 --into-process"
    else
        i=0; until ping -c1 -W1 "$SIP" >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 60 ] && break; done
        C="/bin/sh /lab/user.sh client-retry $SIP:7300"
        single verbs_two_guests 300 "$C --mib $MIB --echo 100 && $C --mib $MIB --from-process --qps 2 --echo 20"
    fi
fi
summary
