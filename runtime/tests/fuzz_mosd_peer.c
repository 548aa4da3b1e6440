/* libFuzzer target: the JSON requests between mosds, as an acceptor reads them from the
 * transport (key already proved: a key holder with a bug, or an attacker who has the key,
 * sends them). Each input is one control message: parsed (mos_control_parse), then decoded as
 * a guest header and as move / where notes. Decoded fields must be in range, and what the
 * acceptor then writes to mosd as a line (the guest line, the move and where lines) must read
 * back (mosd_line_from_acceptor) as exactly those fields: no field can forge a line. */
#include "mosd.h"
#include "mos/status.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_header(struct json_object *o)
{
    struct mosd_guest_header h;
    struct mosd_line l;
    char why[128], line[512];

    if (mosd_guest_header_parse(o, &h, why, sizeof(why)) != 0)
        return;
    if (h.job < 0 || (int)h.uid < 0 || (int)h.gid < 0 || h.deputy_port < 1 ||
        h.deputy_port > 65535 || h.home_pid < 1 || !h.home[0] ||
        (h.max_load != -1 && !(isfinite(h.max_load) && h.max_load >= 0)))
        abort();
    /* the line move_in.c writes once the guest runs (4242: its pid here) */
    snprintf(line, sizeof(line), "guest %d %d %d %d %s %s", 4242, h.home_pid, h.job, (int)h.uid,
             h.home, h.cmd);
    if (mosd_line_from_acceptor(line, &l) != 0 || l.kind != MOSD_LINE_GUEST || l.pid != 4242 ||
        l.home_pid != h.home_pid || l.job != h.job || l.uid != h.uid ||
        strcmp(l.node, h.home) != 0 || strcmp(l.text, h.cmd) != 0)
        abort();
}

static void check_note(struct json_object *o, int move)
{
    struct mosd_note n;
    struct mosd_line l;
    char why[128], line[256];

    if (mosd_note_parse(o, move, &n, why, sizeof(why)) != 0)
        return;
    /* the lines peer.c writes for them */
    if (move)
        snprintf(line, sizeof(line), "move %s %d %s", n.home, (int)n.home_pid, n.node);
    else
        snprintf(line, sizeof(line), "where %d %s", (int)n.home_pid, n.node);
    if (mosd_line_from_acceptor(line, &l) != 0 || l.home_pid != n.home_pid)
        abort();
    if (move ? l.kind != MOSD_LINE_MOVE || strcmp(l.node, n.home) || strcmp(l.to, n.node)
             : l.kind != MOSD_LINE_WHERE || strcmp(l.node, n.node))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_object *o;

    if (size > MOS_TP_MAX_CONTROL)
        return 0; /* the transport refuses longer control messages */
    if (mos_control_parse((const char *)data, size, &o) != 0)
        return 0;
    check_header(o);
    check_note(o, 1);
    check_note(o, 0);
    json_object_put(o);
    return 0;
}
