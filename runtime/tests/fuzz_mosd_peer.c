/* libFuzzer target: the JSON requests between mosds, as an acceptor reads them from the
 * transport (key already proved: a key holder with a bug, or an attacker who has the key,
 * sends them). Each input is one control message: parsed (mos_control_parse), then decoded as
 * a guest header, as move / where notes and as an exec request. Decoded fields must be in range, and what the
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
    if (h.uid != mos_json_int(o, "uid", -1) || h.gid != mos_json_int(o, "gid", -1) ||
        h.home_pid != mos_json_int(o, "home_pid", 0) || h.job != mos_json_int(o, "job", -1))
        abort(); /* decoded as said, never truncated */
    if (h.node_names && json_object_array_length(h.node_names) > MOSD_MAX_JOB_NODES)
        abort();
    if (h.job < 0 || (int)h.uid < 0 || (int)h.gid < 0 || h.deputy_port < 1 ||
        h.deputy_port > 65535 || h.home_pid < 1 || !h.home[0] ||
        (h.max_load != -1 && !(isfinite(h.max_load) && h.max_load >= 0)) ||
        !(h.calls_wait >= 0 && h.calls_wait <= MOSD_MAX_CALLS_WAIT))
        abort();
    /* the line the home's acceptor writes when the job is back in its shell */
    snprintf(line, sizeof(line), "native %d %.3f", h.home_pid, h.calls_wait);
    if (mosd_line_from_acceptor(line, &l) != 0 || l.kind != MOSD_LINE_NATIVE ||
        l.home_pid != h.home_pid || fabs(l.calls_wait - h.calls_wait) > 0.0005)
        abort();
    /* the line move_in.c writes once the guest runs (4242: its pid here) */
    snprintf(line, sizeof(line), "guest %d %d %d %d %s * %s", 4242, h.home_pid, h.job,
             (int)h.uid, h.home, h.cmd);
    if (strchr(line, '\n')) /* mosd reads up to the newline: the rest would be a line of its own */
        abort();
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
    if (strchr(line, '\n'))
        abort();
    if (mosd_line_from_acceptor(line, &l) != 0 || l.home_pid != n.home_pid)
        abort();
    if (move ? l.kind != MOSD_LINE_MOVE || strcmp(l.node, n.home) || strcmp(l.to, n.node)
             : l.kind != MOSD_LINE_WHERE || strcmp(l.node, n.node))
        abort();
}

/* mosrun -E's request as the target reads it: what to run, and who runs it. */
static void check_exec(struct json_object *o)
{
    static struct mosd_exec_req r; /* its group list is large for a stack */
    char why[200];

    if (mosd_exec_req_parse(o, &r, why, sizeof(why)) != 0) {
        if (r.argv || r.envp)
            abort(); /* nothing left allocated on a refusal */
        return;
    }
    if (!r.argv || !r.argv[0] || !r.argv[0][0] || !r.envp || !r.cwd ||
        (r.cwd[0] && r.cwd[0] != '/') || r.umask < 0 || r.umask > 0777 || r.port < 1 ||
        r.port > 65535)
        abort();
    for (char **e = r.envp; *e; e++)
        if (!strchr(*e, '='))
            abort();
    if (mosd_exec_ids_parse(o, &r, why, sizeof(why)) == 0) {
        if ((int)r.uid < 0 || (int)r.gid < 0 || r.home_pid < 1 ||
            r.n_groups > MOSD_EXEC_MAX_GROUPS || !r.home || !r.home[0] || !r.home_addr ||
            strcspn(r.home, " \n") != strlen(r.home))
            abort();
        struct json_object *g = json_object_object_get(o, "groups");
        for (size_t i = 0; i < r.n_groups; i++)
            if ((int)r.groups[i] < 0 ||
                !json_object_is_type(json_object_array_get_idx(g, i), json_type_int) ||
                (long long)r.groups[i] != json_object_get_int64(json_object_array_get_idx(g, i)))
                abort(); /* a group is a JSON integer, decoded as said */
        if (r.uid != mos_json_int(o, "uid", -1) || r.gid != mos_json_int(o, "gid", -1))
            abort();
        for (int i = 0; i < 2; i++)
            if (r.memlock[i] < -1 || r.memlock[i] > MOSD_MAX_MEMLOCK)
                abort(); /* a limit in range, -1 for unlimited */
        if (r.memlock[1] != -1 && (r.memlock[0] == -1 || r.memlock[0] > r.memlock[1]))
            abort(); /* never a soft limit above the hard one */
    }
    mosd_exec_req_free(&r);
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
    check_exec(o);
    json_object_put(o);
    return 0;
}
