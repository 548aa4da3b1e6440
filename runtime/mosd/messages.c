/* What mosd says and hears: JSON lines to its local clients (one object per line), short lines
 * between mosd and its children, and JSON requests and answers between mosds over the
 * transport (cluster key proved by the transport before any of them). */
#include "mosd.h"

#include "mos/status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void mosd_send(struct bufferevent *bev, struct json_object *msg)
{
    const char *text = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);

    bufferevent_write(bev, text, strlen(text));
    bufferevent_write(bev, "\n", 1);
}

struct json_object *mosd_reply_ok(void)
{
    struct json_object *r = json_object_new_object();

    json_object_object_add(r, "ok", json_object_new_boolean(1));
    return r;
}

struct json_object *mosd_reply_error(const char *fmt, ...)
{
    struct json_object *r = json_object_new_object();
    char text[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    json_object_object_add(r, "ok", json_object_new_boolean(0));
    json_object_object_add(r, "error", json_object_new_string(text));
    return r;
}

int mosd_line_read(int fd, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len - 1) {
        ssize_t n = read(fd, buf + got, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        if (buf[got] == '\n')
            break;
        got++;
    }
    buf[got] = '\0';
    return (int)got;
}

void mosd_hostport(const struct mos_config *cfg, int node, char *out, size_t len)
{
    const char *addr = cfg->nodes[node].addr;

    snprintf(out, len, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, cfg->transport_port);
}

void mosd_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

int mosd_peer_call(const struct mosd *d, int node, int timeout_ms, struct json_object *req,
                   mos_tp_conn_t **conn, struct json_object **reply, char *why, size_t len)
{
    const char *name = d->cfg.nodes[node].name;
    const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    struct mos_tp_opts opts = d->tp_opts;
    mos_tp_conn_t *c = NULL;
    char where[160], buf[1024];
    size_t got = 0;
    int rc;

    if (!d->have_key) {
        snprintf(why, len, "%s", MOSD_NO_KEY_TEXT);
        return MOS_E_KEY;
    }
    opts.timeout_ms = timeout_ms;
    mosd_hostport(&d->cfg, node, where, sizeof(where));
    rc = mos_tp_connect(where, &opts, &c);
    if (rc == 0)
        rc = mos_tp_ctl_call(c, text, strlen(text), buf, sizeof(buf) - 1, &got);
    if (rc != 0) {
        snprintf(why, len, "cannot reach %s: %s", name, mos_strerror(rc));
        mos_tp_close(c);
        return rc;
    }
    buf[got] = '\0';
    struct json_object *r = NULL;
    mos_control_parse(buf, got, &r);
    if (!r || !json_object_get_boolean(json_object_object_get(r, "ok"))) {
        snprintf(why, len, "%s", r ? mos_json_str(r, "error", "no reason given")
                                   : "malformed reply");
        json_object_put(r);
        mos_tp_close(c);
        return MOS_E_PROTO;
    }
    if (reply)
        *reply = r;
    else
        json_object_put(r);
    if (conn)
        *conn = c;
    else
        mos_tp_close(c);
    return 0;
}

int mosd_peer_home(const struct mosd *d, const char *name, const char *addr, char *why,
                   size_t len)
{
    int home = mos_config_find_node(&d->cfg, name);

    if (home < 0 || strcmp(d->cfg.nodes[home].addr, addr) != 0) {
        snprintf(why, len, "home node '%s' (%s) is not in this cluster", name, addr);
        return MOS_E_PROTO;
    }
    return home;
}

int mosd_peer_answer(mos_tp_conn_t *c, uint32_t id, int ok, const char *key, const char *text)
{
    struct json_object *r = json_object_new_object();
    int rc;

    json_object_object_add(r, "ok", json_object_new_boolean(ok));
    if (text)
        json_object_object_add(r, key, json_object_new_string(text));
    const char *s = json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN);
    rc = mos_tp_ctl_reply(c, id, s, strlen(s));
    json_object_put(r);
    return rc;
}
