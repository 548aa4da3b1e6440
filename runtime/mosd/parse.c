/* What mosd hears, parsed from a buffer: requests on the command socket, requests between
 * mosds, and the lines between mosd and its children. No I/O and no daemon state here, so the
 * fuzz targets (runtime/tests/fuzz_mosd_*.c) drive exactly what mosd runs. Only the shape and
 * ranges of fields are checked; who may ask for what is decided by the callers. */
#include "mosd.h"

#include "mos/status.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON fields ------------------------------------------------------------------------- */

int mosd_json_int_in(struct json_object *o, const char *key, long long lo, long long hi,
                     long long fallback, long long *out)
{
    struct json_object *v;

    *out = fallback;
    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_int))
        return MOS_E_PROTO;
    /* beyond int64 json-c clamps to INT64_MIN/MAX, outside every range asked for */
    long long n = json_object_get_int64(v);
    if (n < lo || n > hi)
        return MOS_E_PROTO;
    *out = n;
    return 0;
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.';
}

/* What a node name may be (mos.conf's rule): 1..63 of [A-Za-z0-9._-]. */
static int name_ok(const char *s, size_t len)
{
    if (len == 0 || len >= MOS_NODE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!name_char(s[i]))
            return 0;
    return 1;
}

int mosd_json_name(struct json_object *o, const char *key, char out[MOS_NODE_NAME_MAX])
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return MOS_E_PROTO;
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (!name_ok(s, len))
        return MOS_E_PROTO;
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

/* A string field (no NUL inside, at most max bytes); absent: fallback. */
static int json_text(struct json_object *o, const char *key, size_t max, const char *fallback,
                     const char **out)
{
    struct json_object *v;

    *out = fallback;
    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_string))
        return MOS_E_PROTO;
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (len > max || strlen(s) != len)
        return MOS_E_PROTO;
    *out = s;
    return 0;
}

/* A load limit: a finite number >= 0 (an integer is one too); absent: -1 (none). */
static int json_load(struct json_object *o, const char *key, double *out)
{
    struct json_object *v;

    *out = -1;
    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
        return MOS_E_PROTO;
    double x = json_object_get_double(v);
    if (!isfinite(x) || x < 0)
        return MOS_E_PROTO;
    *out = x;
    return 0;
}

_Static_assert(MOSD_MAX_JOB_NODES == 128, "the refusal below says 128");

int mosd_json_node_names(struct json_object *o, struct json_object **out)
{
    struct json_object *arr;

    *out = NULL;
    if (!json_object_object_get_ex(o, "nodes", &arr))
        return 0;
    if (!json_object_is_type(arr, json_type_array) ||
        json_object_array_length(arr) > MOSD_MAX_JOB_NODES)
        return MOS_E_PROTO;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *v = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(v, json_type_string) ||
            !name_ok(json_object_get_string(v), (size_t)json_object_get_string_len(v)))
            return MOS_E_PROTO;
    }
    *out = arr;
    return 0;
}

static int refuse(char *why, size_t len, const char *what)
{
    snprintf(why, len, "malformed request: %s", what);
    return MOS_E_PROTO;
}

/* ---- the command socket ------------------------------------------------------------------- */

int mosd_register_parse(struct json_object *o, struct mosd_register_req *r, char *why,
                        size_t len)
{
    long long pid, locked, fd_min, mem;

    memset(r, 0, sizeof(*r));
    if (mosd_json_int_in(o, "pid", 1, INT_MAX, 0, &pid) != 0 || pid == 0)
        return refuse(why, len, "pid");
    if (mosd_json_int_in(o, "locked", 0, 1, 0, &locked) != 0 ||
        mosd_json_int_in(o, "reserved_min", 0, INT_MAX, 0, &fd_min) != 0 ||
        mosd_json_int_in(o, "mem_mib", 0, MOSD_MAX_MEM_MIB, 0, &mem) != 0)
        return refuse(why, len, "locked, reserved_min or mem_mib");
    if (json_text(o, "cmd", MOSD_MAX_TEXT, "?", &r->cmd) != 0 ||
        json_text(o, "stay", MOSD_MAX_TEXT, "", &r->stay) != 0 ||
        json_text(o, "start_on", MOS_NODE_NAME_MAX - 1, NULL, &r->start_on) != 0)
        return refuse(why, len, "cmd, stay or start_on");
    if (mosd_json_node_names(o, &r->nodes) != 0)
        return refuse(why, len, "nodes (a list of at most 128 node names)");
    r->pid = (pid_t)pid;
    r->locked = (int)locked;
    r->reserved_min = (int)fd_min;
    r->mem_mib = (double)mem;
    return 0;
}

int mosd_migrate_parse(struct json_object *o, struct mosd_migrate_req *r, char *why, size_t len)
{
    long long pid;

    memset(r, 0, sizeof(*r));
    if (mosd_json_int_in(o, "pid", 1, INT_MAX, 0, &pid) != 0 || pid == 0)
        return refuse(why, len, "pid");
    if (json_text(o, "to", MOS_NODE_NAME_MAX - 1, "", &r->to) != 0 ||
        json_text(o, "file", MOSD_MAX_TEXT, NULL, &r->file) != 0)
        return refuse(why, len, "to or file");
    if (json_load(o, "max_load", &r->max_load) != 0)
        return refuse(why, len, "max_load");
    struct json_object *live = json_object_object_get(o, "live");
    if (live && !json_object_is_type(live, json_type_boolean))
        return refuse(why, len, "live");
    r->live = live && json_object_get_boolean(live);
    r->pid = (pid_t)pid;
    return 0;
}

/* ---- requests between mosds --------------------------------------------------------------- */

int mosd_guest_header_parse(struct json_object *o, struct mosd_guest_header *h, char *why,
                            size_t len)
{
    long long job, uid, gid, port, home_pid;
    const char *cmd, *addr;
    mos_key_t token;

    memset(h, 0, sizeof(*h));
    if (mosd_json_int_in(o, "job", 0, INT_MAX, -1, &job) != 0 || job < 0 ||
        mosd_json_int_in(o, "uid", 0, MOSD_MAX_ID, -1, &uid) != 0 || uid < 0 ||
        mosd_json_int_in(o, "gid", 0, MOSD_MAX_ID, -1, &gid) != 0 || gid < 0 ||
        mosd_json_int_in(o, "deputy_port", 1, 65535, 0, &port) != 0 || port == 0 ||
        mosd_json_int_in(o, "home_pid", 1, INT_MAX, 0, &home_pid) != 0 || home_pid == 0)
        return refuse(why, len, "job, uid, gid, deputy_port or home_pid");
    if (mosd_json_name(o, "home", h->home) != 0 ||
        json_text(o, "home_addr", MOS_ADDR_MAX - 1, NULL, &addr) != 0 || !addr ||
        json_text(o, "cmd", MOSD_MAX_TEXT, "?", &cmd) != 0)
        return refuse(why, len, "home, home_addr or cmd");
    if (json_load(o, "max_load", &h->max_load) != 0)
        return refuse(why, len, "max_load");
    /* a hint for the balancer only, bounded: absent, it is 0 (unknown) */
    if (json_load(o, "calls_wait", &h->calls_wait) != 0 || h->calls_wait > MOSD_MAX_CALLS_WAIT)
        return refuse(why, len, "calls_wait");
    if (h->calls_wait < 0)
        h->calls_wait = 0;
    if (mos_key_parse_hex(mos_json_str(o, "token", ""), &token) != 0)
        return refuse(why, len, "token");
    if (mosd_json_node_names(o, &h->node_names) != 0)
        return refuse(why, len, "nodes");
    h->job = (int)job;
    h->uid = (uid_t)uid;
    h->gid = (gid_t)gid;
    h->deputy_port = (int)port;
    h->home_pid = (int)home_pid;
    snprintf(h->home_addr, sizeof(h->home_addr), "%s", addr);
    /* the command goes into a line to mosd (mosd_line_from_acceptor): one line, printable */
    size_t n = 0;
    for (; cmd[n] && n < sizeof(h->cmd) - 1; n++)
        h->cmd[n] = (unsigned char)cmd[n] < ' ' || cmd[n] == 0x7f ? '?' : cmd[n];
    h->cmd[n] = '\0';
    memcpy(h->token, token.bytes, sizeof(h->token));
    return 0;
}

int mosd_note_parse(struct json_object *o, int move, struct mosd_note *n, char *why, size_t len)
{
    long long home_pid;

    memset(n, 0, sizeof(*n));
    if (mosd_json_int_in(o, "home_pid", 1, INT_MAX, 0, &home_pid) != 0 || home_pid == 0)
        return refuse(why, len, "home_pid");
    if ((move && mosd_json_name(o, "home", n->home) != 0) ||
        mosd_json_name(o, move ? "to" : "where", n->node) != 0)
        return refuse(why, len, move ? "home or to" : "where");
    n->home_pid = (pid_t)home_pid;
    return 0;
}

/* A string that is all it says it is: no NUL inside, at most max bytes. */
static const char *clean_string(struct json_object *s, size_t max)
{
    if (!s || !json_object_is_type(s, json_type_string))
        return NULL;
    const char *text = json_object_get_string(s);
    size_t len = (size_t)json_object_get_string_len(s);
    return strlen(text) == len && len <= max ? text : NULL;
}

/* An array of min..MOSD_EXEC_MAX_ARGS clean strings as a NULL-terminated vector (environment
 * entries must hold '='; a program name may not be empty). */
static int strings_of(struct json_object *o, const char *key, size_t min, int env, char ***out,
                      char *why, size_t len)
{
    struct json_object *arr;
    size_t n;

    if (!json_object_object_get_ex(o, key, &arr) || !json_object_is_type(arr, json_type_array) ||
        (n = json_object_array_length(arr)) < min || n > MOSD_EXEC_MAX_ARGS) {
        snprintf(why, len, "%s: not a list of %zu to %d strings", key, min, MOSD_EXEC_MAX_ARGS);
        return MOS_E_PROTO;
    }
    char **v = calloc(n + 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *s = clean_string(json_object_array_get_idx(arr, i), MOS_TP_MAX_CONTROL);
        if (!s || (env && !strchr(s, '=')) || (!env && i == 0 && !*s)) {
            snprintf(why, len, "%s[%zu] is malformed", key, i);
            free(v);
            return MOS_E_PROTO;
        }
        v[i] = (char *)s;
    }
    *out = v;
    return 0;
}

void mosd_exec_req_free(struct mosd_exec_req *r)
{
    free(r->argv);
    free(r->envp);
    r->argv = r->envp = NULL;
}

int mosd_exec_req_parse(struct json_object *o, struct mosd_exec_req *r, char *why, size_t len)
{
    long long umask_bits, port;
    mos_key_t token;
    int rc;

    memset(r, 0, sizeof(*r));
    r->cwd = clean_string(json_object_object_get(o, "cwd"), MOSD_EXEC_MAX_PATH);
    if (!r->cwd || (r->cwd[0] && r->cwd[0] != '/') ||
        mosd_json_int_in(o, "umask", 0, 0777, 022, &umask_bits) != 0 ||
        mosd_json_int_in(o, "port", 1, 65535, 0, &port) != 0 || port == 0 ||
        mos_key_parse_hex(mos_json_str(o, "token", ""), &token) != 0) {
        snprintf(why, len, "malformed request (cwd, umask, port or token)");
        return MOS_E_PROTO;
    }
    r->umask = (int)umask_bits;
    r->port = (int)port;
    memcpy(r->token, token.bytes, sizeof(r->token));
    rc = strings_of(o, "argv", 1, 0, &r->argv, why, len);
    if (rc == 0)
        rc = strings_of(o, "env", 0, 1, &r->envp, why, len);
    if (rc != 0)
        mosd_exec_req_free(r);
    return rc;
}

int mosd_exec_ids_parse(struct json_object *o, struct mosd_exec_req *r, char *why, size_t len)
{
    long long uid, gid, home_pid, v;
    char name[MOS_NODE_NAME_MAX];
    struct json_object *g;

    if (mosd_json_int_in(o, "uid", 0, MOSD_MAX_ID, -1, &uid) != 0 || uid < 0 ||
        mosd_json_int_in(o, "gid", 0, MOSD_MAX_ID, -1, &gid) != 0 || gid < 0 ||
        mosd_json_int_in(o, "home_pid", 1, INT_MAX, 0, &home_pid) != 0 || home_pid == 0 ||
        !json_object_object_get_ex(o, "groups", &g) || !json_object_is_type(g, json_type_array) ||
        json_object_array_length(g) > MOSD_EXEC_MAX_GROUPS)
        return refuse(why, len, "uid, gid, groups or pid");
    if (mosd_json_name(o, "home", name) != 0 ||
        json_text(o, "home_addr", MOS_ADDR_MAX - 1, NULL, &r->home_addr) != 0 || !r->home_addr)
        return refuse(why, len, "home or home_addr");
    r->home = mos_json_str(o, "home", "");
    r->n_groups = json_object_array_length(g);
    for (size_t i = 0; i < r->n_groups; i++) {
        struct json_object *e = json_object_array_get_idx(g, i);
        if (!json_object_is_type(e, json_type_int) || (v = json_object_get_int64(e)) < 0 ||
            v > MOSD_MAX_ID)
            return refuse(why, len, "group list");
        r->groups[i] = (gid_t)v;
    }
    if (!json_object_object_get_ex(o, "memlock", &g) || !json_object_is_type(g, json_type_array) ||
        json_object_array_length(g) != 2)
        return refuse(why, len, "memlock");
    for (size_t i = 0; i < 2; i++) {
        struct json_object *e = json_object_array_get_idx(g, i);
        if (!json_object_is_type(e, json_type_int) || (v = json_object_get_int64(e)) < -1 ||
            v > MOSD_MAX_MEMLOCK)
            return refuse(why, len, "memlock");
        r->memlock[i] = v;
    }
    if (r->memlock[1] != -1 && (r->memlock[0] == -1 || r->memlock[0] > r->memlock[1]))
        return refuse(why, len, "memlock (soft above hard)");
    r->uid = (uid_t)uid;
    r->gid = (gid_t)gid;
    r->home_pid = (int)home_pid;
    return 0;
}

/* ---- lines between mosd and its children ------------------------------------------------- */

/* The word at *p (up to a space or the end) as a long long in [lo, hi]: strictly decimal, so
 * that what %d wrote reads back and nothing else does. *p moves past the word. */
static int word_int(const char **p, long long lo, long long hi, long long *out)
{
    const char *s = *p;
    char *end;

    if (!(*s >= '0' && *s <= '9') && !(*s == '-' && s[1] >= '0' && s[1] <= '9'))
        return MOS_E_PROTO;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno != 0 || (*end != ' ' && *end != '\0') || n < lo || n > hi)
        return MOS_E_PROTO;
    *out = n;
    *p = end;
    return 0;
}

/* The word at *p as a node name; *p moves past it. */
static int word_name(const char **p, char out[MOS_NODE_NAME_MAX])
{
    const char *s = *p;
    size_t len = strcspn(s, " ");

    if (!name_ok(s, len))
        return MOS_E_PROTO;
    memcpy(out, s, len);
    out[len] = '\0';
    *p = s + len;
    return 0;
}

/* One space between words, as the writers put it (so each line has one spelling). */
static int sep(const char **p)
{
    if (**p != ' ')
        return MOS_E_PROTO;
    (*p)++;
    return 0;
}

/* A guest line's NODES word: "*", "-" or up to MOSD_MAX_JOB_NODES indices joined by commas. */
static int word_nodes(const char **p, struct mosd_nodeset *s)
{
    long long idx;

    memset(s, 0, sizeof(*s));
    if (**p == '*' || **p == '-') {
        s->restricted = **p == '-';
        (*p)++;
        return **p == ' ' || **p == '\0' ? 0 : MOS_E_PROTO;
    }
    s->restricted = 1;
    for (;;) {
        const char *comma = strchr(*p, ',');
        const char *space = strchr(*p, ' ');
        if (s->n == MOSD_MAX_JOB_NODES)
            return MOS_E_PROTO;
        if (comma && (!space || comma < space)) {
            /* word_int stops at a space or the end: read the digits before the comma */
            char digits[12];
            size_t k = (size_t)(comma - *p);
            const char *q = digits;
            if (k == 0 || k >= sizeof(digits))
                return MOS_E_PROTO;
            memcpy(digits, *p, k);
            digits[k] = '\0';
            if (word_int(&q, 0, MOS_CONFIG_MAX_NODES - 1, &idx) != 0 || *q != '\0')
                return MOS_E_PROTO;
            s->idx[s->n++] = (uint32_t)idx;
            *p = comma + 1;
            continue;
        }
        if (word_int(p, 0, MOS_CONFIG_MAX_NODES - 1, &idx) != 0)
            return MOS_E_PROTO;
        s->idx[s->n++] = (uint32_t)idx;
        return 0;
    }
}

void mosd_nodes_word(const struct mosd_nodeset *s, char *out, size_t len)
{
    size_t used = 0;

    snprintf(out, len, "%s", !s->restricted ? "*" : s->n ? "" : "-");
    for (unsigned i = 0; s->restricted && i < s->n && used < len; i++) {
        int k = snprintf(out + used, len - used, "%s%u", i ? "," : "", s->idx[i]);
        used += k > 0 ? (size_t)k : 0;
    }
}

static int line_guest(const char *p, struct mosd_line *l)
{
    long long pid, home_pid, job, uid;

    if (word_int(&p, 1, INT_MAX, &pid) != 0 || sep(&p) != 0 ||
        word_int(&p, 1, INT_MAX, &home_pid) != 0 || sep(&p) != 0 ||
        word_int(&p, 0, INT_MAX, &job) != 0 || sep(&p) != 0 ||
        word_int(&p, 0, MOSD_MAX_ID, &uid) != 0 || sep(&p) != 0 ||
        word_name(&p, l->node) != 0 || sep(&p) != 0 || word_nodes(&p, &l->nodes) != 0 ||
        sep(&p) != 0)
        return MOS_E_PROTO;
    l->pid = (pid_t)pid;
    l->home_pid = (pid_t)home_pid;
    l->job = (int)job;
    l->uid = (uid_t)uid;
    l->text = p; /* the command: the rest of the line */
    return 0;
}

/* "%.3f" seconds in [0, MOSD_MAX_CALLS_WAIT]: digits, a point, digits. */
static int word_calls_wait(const char **p, double *out)
{
    char *end;

    if (!(**p >= '0' && **p <= '9'))
        return MOS_E_PROTO;
    errno = 0;
    double x = strtod(*p, &end);
    if (errno != 0 || !isfinite(x) || x < 0 || x > MOSD_MAX_CALLS_WAIT || (*end && *end != ' '))
        return MOS_E_PROTO;
    *out = x;
    *p = end;
    return 0;
}

int mosd_line_from_acceptor(const char *line, struct mosd_line *l)
{
    long long home_pid;

    memset(l, 0, sizeof(*l));
    l->max_load = -1;
    if (strncmp(line, "guest ", 6) == 0) {
        l->kind = MOSD_LINE_GUEST;
        return line_guest(line + 6, l);
    }
    const char *p = line;
    if (strncmp(line, "native ", 7) == 0) {
        l->kind = MOSD_LINE_NATIVE;
        p += 7;
    } else if (strncmp(line, "where ", 6) == 0) {
        l->kind = MOSD_LINE_WHERE;
        p += 6;
    } else if (strncmp(line, "move ", 5) == 0) {
        l->kind = MOSD_LINE_MOVE;
        p += 5;
        if (word_name(&p, l->node) != 0 || sep(&p) != 0)
            return MOS_E_PROTO;
    } else {
        return MOS_E_PROTO;
    }
    if (word_int(&p, 1, INT_MAX, &home_pid) != 0)
        return MOS_E_PROTO;
    l->home_pid = (pid_t)home_pid;
    if (l->kind == MOSD_LINE_NATIVE && *p == ' ') /* its calls home as measured away */
        return sep(&p) == 0 && word_calls_wait(&p, &l->calls_wait) == 0 && *p == '\0'
                   ? 0
                   : MOS_E_PROTO;
    if (l->kind == MOSD_LINE_WHERE && (sep(&p) != 0 || word_name(&p, l->node) != 0))
        return MOS_E_PROTO;
    if (l->kind == MOSD_LINE_MOVE && (sep(&p) != 0 || word_name(&p, l->to) != 0))
        return MOS_E_PROTO;
    return *p == '\0' ? 0 : MOS_E_PROTO;
}

int mosd_line_order(const char *line, struct mosd_line *l)
{
    const char *p = line + 5;

    memset(l, 0, sizeof(*l));
    l->kind = MOSD_LINE_MOVE;
    l->max_load = -1;
    if (strncmp(line, "move ", 5) != 0 || word_name(&p, l->to) != 0)
        return MOS_E_PROTO;
    if (*p == '\0')
        return 0;
    if (sep(&p) != 0)
        return MOS_E_PROTO;
    /* the balancer's limit, written with %.3f */
    char *end;
    errno = 0;
    double x = strtod(p, &end);
    if (!(*p >= '0' && *p <= '9') || errno != 0 || *end != '\0' || !isfinite(x))
        return MOS_E_PROTO;
    l->max_load = x;
    return 0;
}

int mosd_line_report(const char *line, struct mosd_line *l)
{
    long long bytes;

    memset(l, 0, sizeof(*l));
    l->max_load = -1;
    if (strncmp(line, "ok ", 3) == 0) {
        const char *p = line + 3;
        l->kind = MOSD_LINE_OK;
        if (word_int(&p, 0, LLONG_MAX, &bytes) != 0 || sep(&p) != 0)
            return MOS_E_PROTO;
        l->bytes = (uint64_t)bytes;
        l->text = p;
        return word_name(&p, l->to) == 0 && *p == '\0' ? 0 : MOS_E_PROTO;
    }
    if (strncmp(line, "error ", 6) == 0) {
        l->kind = MOSD_LINE_ERROR;
        l->text = line + 6;
        return 0;
    }
    return MOS_E_PROTO;
}

/* ---- the state file ------------------------------------------------------------------------
 * {"version": 1, "node": NAME, "jobs": [RECORD...]}; a record names a process mosd will hold
 * or talk to, so every field is required and in range, and the text fields are clean. */

/* A required integer in [lo, hi]. */
static int need_int(struct json_object *o, const char *key, long long lo, long long hi,
                    long long *out)
{
    if (!json_object_object_get_ex(o, key, NULL))
        return MOS_E_PROTO;
    return mosd_json_int_in(o, key, lo, hi, 0, out);
}

/* A required unsigned 64-bit figure, written as a decimal string (JSON ints stop at 2^63). */
static int need_u64(struct json_object *o, const char *key, unsigned long long *out)
{
    const char *text = clean_string(json_object_object_get(o, key), 20);
    char *end;

    if (!text || *text < '0' || *text > '9')
        return MOS_E_PROTO;
    errno = 0;
    *out = strtoull(text, &end, 10);
    return *end || errno ? MOS_E_PROTO : 0;
}

static int need_text(struct json_object *o, const char *key, char *out, size_t size)
{
    const char *text = clean_string(json_object_object_get(o, key), size - 1);

    if (!text)
        return MOS_E_PROTO;
    snprintf(out, size, "%s", text);
    return 0;
}

/* The registered identity: uids, gids, capabilities, parent, start time. */
static int state_ident(struct json_object *o, struct mos_proc_ident *id)
{
    static const char *const uid_keys[] = {"ruid", "euid", "suid", "fsuid"};
    static const char *const gid_keys[] = {"rgid", "egid", "sgid", "fsgid"};
    long long v;
    unsigned long long u;

    memset(id, 0, sizeof(*id));
    for (int i = 0; i < MOS_ID_FIELDS; i++) {
        if (need_int(o, uid_keys[i], 0, MOSD_MAX_ID, &v) != 0)
            return MOS_E_PROTO;
        id->uid[i] = (uid_t)v;
        if (need_int(o, gid_keys[i], 0, MOSD_MAX_ID, &v) != 0)
            return MOS_E_PROTO;
        id->gid[i] = (gid_t)v;
    }
    if (need_u64(o, "cap_prm", &u) != 0)
        return MOS_E_PROTO;
    id->cap_prm = u;
    if (need_u64(o, "cap_eff", &u) != 0)
        return MOS_E_PROTO;
    id->cap_eff = u;
    if (need_u64(o, "cap_amb", &u) != 0 || (id->cap_amb = u, need_u64(o, "start", &u)) != 0)
        return MOS_E_PROTO;
    id->start_time = u;
    if (need_int(o, "status_uid", 0, MOSD_MAX_ID, &v) != 0)
        return MOS_E_PROTO;
    id->status_uid = (uid_t)v;
    if (need_int(o, "exe_setid", -1, 1, &v) != 0)
        return MOS_E_PROTO;
    id->exe_setid = (int)v;
    return 0;
}

static int state_record(struct json_object *o, const char *self, struct mosd_state_rec *r)
{
    long long v;

    memset(r, 0, sizeof(*r));
    if (!json_object_is_type(o, json_type_object) || need_int(o, "guest", 0, 1, &v) != 0)
        return MOS_E_PROTO;
    r->guest = (int)v;
    if (need_int(o, "id", 0, MOSD_MAX_ID, &v) != 0)
        return MOS_E_PROTO;
    r->id = (int)v;
    if (need_int(o, "pid", 2, INT_MAX, &v) != 0)
        return MOS_E_PROTO;
    r->pid = (pid_t)v;
    if (need_int(o, "home_pid", 1, INT_MAX, &v) != 0)
        return MOS_E_PROTO;
    r->home_pid = (pid_t)v;
    /* root's processes never migrate: a record for uid 0 is not one mosd wrote */
    if (need_int(o, "uid", 1, MOSD_MAX_ID, &v) != 0)
        return MOS_E_PROTO;
    r->uid = (uid_t)v;
    if (need_int(o, "gid", 0, MOSD_MAX_ID, &v) != 0 || (r->gid = (gid_t)v,
        need_int(o, "locked", 0, 1, &v)) != 0)
        return MOS_E_PROTO;
    r->locked = (int)v;
    if (json_object_object_get_ex(o, "started_ns", NULL) &&
        need_u64(o, "started_ns", &r->started_ns) != 0)
        return MOS_E_PROTO;
    if (need_text(o, "cmd", r->cmd, sizeof(r->cmd)) != 0 ||
        mosd_json_name(o, "home", r->home) != 0 || mosd_json_name(o, "where", r->where) != 0 ||
        mosd_json_node_names(o, &r->nodes) != 0)
        return MOS_E_PROTO;
    if (!r->guest) {
        /* an own job is ours: its home is this node, and it is its own process here */
        if (strcmp(r->home, self) != 0 || r->home_pid != r->pid)
            return MOS_E_PROTO;
        if (need_int(o, "owner_pid", 2, INT_MAX, &v) != 0)
            return MOS_E_PROTO;
        r->owner_pid = (pid_t)v;
        if (need_int(o, "owner_fd_min", 0, INT_MAX, &v) != 0)
            return MOS_E_PROTO;
        r->owner_fd_min = (int)v;
        struct json_object *id;
        if (!json_object_object_get_ex(o, "ident", &id) || !json_object_is_type(id, json_type_object) ||
            state_ident(id, &r->ident) != 0)
            return MOS_E_PROTO;
        r->ident.ppid = r->owner_pid;
        return 0;
    }
    /* a guest runs here */
    if (strcmp(r->where, self) != 0 || need_int(o, "supervisor", 2, INT_MAX, &v) != 0)
        return MOS_E_PROTO;
    r->supervisor = (pid_t)v;
    return need_u64(o, "sup_start", &r->sup_start);
}

/* The whole text must be that one object (a truncated file is refused, not half read), and
 * no deeper than a record needs. */
#define STATE_MAX_DEPTH 8
static struct json_object *state_json(const char *text, size_t len)
{
    struct json_tokener *tok;
    struct json_object *root;

    if (len > INT_MAX || memchr(text, '\0', len) || !(tok = json_tokener_new_ex(STATE_MAX_DEPTH)))
        return NULL;
    root = json_tokener_parse_ex(tok, text, (int)len);
    if (root && (json_tokener_get_error(tok) != json_tokener_success ||
                 (size_t)json_tokener_get_parse_end(tok) != len)) {
        json_object_put(root);
        root = NULL;
    }
    json_tokener_free(tok);
    return root;
}

static int state_records(struct json_object *root, const char *self,
                         struct mosd_state_rec *recs, size_t max, size_t *n, char *why,
                         size_t len)
{
    struct json_object *jobs;
    char node[MOS_NODE_NAME_MAX];
    long long version;
    size_t count;

    if (!json_object_is_type(root, json_type_object) ||
        need_int(root, "version", 0, INT_MAX, &version) != 0)
        return refuse(why, len, "not a mosd state file");
    if (version != MOSD_STATE_VERSION) {
        snprintf(why, len, "state file version %lld, this mosd reads %d", version,
                 MOSD_STATE_VERSION);
        return MOS_E_PROTO;
    }
    if (mosd_json_name(root, "node", node) != 0 || strcmp(node, self) != 0) {
        snprintf(why, len, "state file of another node");
        return MOS_E_PROTO;
    }
    if (!json_object_object_get_ex(root, "jobs", &jobs) ||
        !json_object_is_type(jobs, json_type_array) ||
        (count = json_object_array_length(jobs)) > max)
        return refuse(why, len, "jobs");
    for (size_t i = 0; i < count; i++)
        if (state_record(json_object_array_get_idx(jobs, i), self, &recs[i]) != 0) {
            snprintf(why, len, "malformed state file: job record %zu", i);
            return MOS_E_PROTO;
        }
    *n = count;
    return 0;
}

int mosd_state_parse(const char *text, size_t text_len, const char *self,
                     struct mosd_state_rec *recs, size_t max, size_t *n,
                     struct json_object **root, char *why, size_t len)
{
    *n = 0;
    *root = state_json(text, text_len);
    if (!*root) {
        snprintf(why, len, "not whole JSON (truncated or corrupt)");
        return MOS_E_PROTO;
    }
    int rc = state_records(*root, self, recs, max, n, why, len);
    if (rc != 0) {
        json_object_put(*root);
        *root = NULL;
    }
    return rc;
}

/* The counts of a calls line, in the order they are written. */
static uint64_t *calls_field(struct mos_call_stats *s, int i)
{
    static const int n_head = MOS_CALL_KINDS + 3;

    if (i < MOS_CALL_KINDS)
        return &s->calls[i];
    if (i < n_head)
        return i == MOS_CALL_KINDS ? &s->errors
               : i == MOS_CALL_KINDS + 1 ? &s->bytes
                                         : &s->latency_sum_ns;
    return &s->latency[i - n_head];
}

#define CALLS_FIELDS (MOS_CALL_KINDS + 3 + MOS_CALL_LATENCY_BOUNDS + 1)

int mosd_line_calls(const char *line, struct mos_call_stats *s)
{
    const char *p = line + 6;
    uint64_t in_buckets = 0;
    long long v;

    memset(s, 0, sizeof(*s));
    if (strncmp(line, "calls ", 6) != 0)
        return MOS_E_PROTO;
    for (int i = 0; i < CALLS_FIELDS; i++) {
        if ((i > 0 && sep(&p) != 0) || word_int(&p, 0, LLONG_MAX, &v) != 0)
            return MOS_E_PROTO;
        *calls_field(s, i) = (uint64_t)v;
    }
    if (*p != '\0')
        return MOS_E_PROTO;
    for (int b = 0; b <= MOS_CALL_LATENCY_BOUNDS; b++) {
        in_buckets += s->latency[b]; /* each <= LLONG_MAX: stops before it could wrap */
        if (in_buckets > s->calls[MOS_CALLS_FORWARD])
            return MOS_E_PROTO;
    }
    return in_buckets == s->calls[MOS_CALLS_FORWARD] ? 0 : MOS_E_PROTO;
}

void mosd_calls_line(const struct mos_call_stats *s, char *out, size_t len)
{
    struct mos_call_stats copy = *s;
    size_t used = 0;

    snprintf(out, len, "calls");
    used = strlen(out);
    for (int i = 0; i < CALLS_FIELDS && used < len; i++) {
        int k = snprintf(out + used, len - used, " %llu",
                         (unsigned long long)*calls_field(&copy, i));
        used += k > 0 ? (size_t)k : 0;
    }
}
