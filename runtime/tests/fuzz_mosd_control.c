/* libFuzzer target: mosd's command socket. The input is what a local user writes to the
 * socket: cut into lines at '\n' as mosd does, each line parsed (mos_control_parse) and, when
 * it is an object, decoded as the requests whose fields mosd uses (register, migrate,
 * exec_remote). Every accepted line must be one JSON object that prints and parses back the
 * same; every decoded request must have its fields within the ranges mosd relies on. */
#include "mosd.h"
#include "mos/status.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s)
{
    if (!s || strlen(s) > MOSD_MAX_TEXT)
        abort();
}

static void check_requests(struct json_object *o)
{
    struct mosd_register_req r;
    struct mosd_migrate_req m;
    char why[128];

    if (mosd_register_parse(o, &r, why, sizeof(why)) == 0) {
        /* what was decoded is what the request said, never a truncation of it */
        if (r.pid != mos_json_int(o, "pid", -1) ||
            r.reserved_min != mos_json_int(o, "reserved_min", 0))
            abort();
        if (r.pid <= 0 || (r.locked != 0 && r.locked != 1) || r.reserved_min < 0 ||
            r.mem_mib < 0 || r.mem_mib > (double)MOSD_MAX_MEM_MIB)
            abort();
        check_text(r.cmd);
        check_text(r.stay);
        if (r.start_on && strlen(r.start_on) >= MOS_NODE_NAME_MAX)
            abort();
        for (size_t i = 0; r.nodes && i < json_object_array_length(r.nodes); i++)
            if (i >= MOSD_MAX_JOB_NODES ||
                strlen(json_object_get_string(json_object_array_get_idx(r.nodes, i))) >=
                    MOS_NODE_NAME_MAX)
                abort();
    } else if (!why[0]) {
        abort(); /* a refusal says why */
    }
    if (mosd_migrate_parse(o, &m, why, sizeof(why)) == 0) {
        if (m.pid != mos_json_int(o, "pid", -1) || m.pid <= 0 || !m.to || strlen(m.to) >= MOS_NODE_NAME_MAX)
            abort();
        if (m.max_load != -1 && !(isfinite(m.max_load) && m.max_load >= 0))
            abort();
        if (m.file)
            check_text(m.file);
    }
    static struct mosd_exec_req x; /* mosrun -E's exec_remote; its group list is large */
    if (mosd_exec_req_parse(o, &x, why, sizeof(why)) == 0) {
        if (!x.argv || !x.argv[0] || !x.argv[0][0] || !x.envp || x.port < 1 || x.port > 65535)
            abort();
        mosd_exec_req_free(&x);
    } else if (x.argv || x.envp) {
        abort();
    }
}

static void check_line(const char *line, size_t len)
{
    struct json_object *o, *again;

    int rc = mos_control_parse(line, len, &o);
    if (rc != 0) {
        if (rc != MOS_E_PROTO && rc != -ENOMEM)
            abort();
        if (o)
            abort();
        return;
    }
    if (!json_object_is_type(o, json_type_object) || memchr(line, '\0', len))
        abort();
    /* printed and parsed back it prints the same (NaN never equals itself: texts compared) */
    char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    if (!text || mos_control_parse(text, strlen(text), &again) != 0 ||
        strcmp(text, json_object_to_json_string_ext(again, JSON_C_TO_STRING_PLAIN)) != 0)
        abort();
    free(text);
    json_object_put(again);
    mos_json_str(o, "op", "");
    mos_json_int(o, "pid", -1);
    check_requests(o);
    json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break; /* no newline yet: mosd waits for the rest */
        check_line(p, (size_t)(nl - p));
        p = nl + 1;
    }
    return 0;
}
