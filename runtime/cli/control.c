#include "control.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int mos_runtime_config(const char *explicit_path, struct mos_config *cfg, int *self)
{
    int may_be_absent, rc;
    const char *path = mos_config_choose_path(explicit_path, &may_be_absent);

    if (may_be_absent && access(path, F_OK) != 0)
        rc = mos_config_parse("", "(built-in one-node config)", cfg);
    else
        rc = mos_config_load(path, cfg);
    if (rc != 0)
        return rc;
    *self = mos_config_find_self(cfg);
    if (*self < 0) {
        mos_err("config", "%s: none of the %zu nodes has an address of this host", cfg->path,
                cfg->n_nodes);
        mos_config_free(cfg);
        return MOS_E_UNKNOWN_NODE;
    }
    return 0;
}

int mos_control_socket_path(const struct mos_config *cfg, int self, char *out, size_t len)
{
    int rc = mos_config_expand_node(cfg->socket_path, cfg->nodes[self].name, out, len);

    if (rc != 0)
        return rc;
    return strlen(out) < sizeof(((struct sockaddr_un *)0)->sun_path) ? 0 : -ENAMETOOLONG;
}

int mos_control_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int mos_control_send(int fd, struct json_object *msg)
{
    const char *text = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
    size_t len = strlen(text), done = 0;

    while (done <= len) {
        const char *p = done < len ? text + done : "\n";
        size_t n = done < len ? len - done : 1;
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno == EPIPE || errno == ECONNRESET ? MOS_E_PEER_GONE : -errno;
        done += (size_t)w;
        if (done > len)
            break;
    }
    return 0;
}

int mos_control_recv(int fd, struct json_object **msg, int timeout_ms)
{
    char *line = malloc(MOS_CONTROL_MAX_LINE);
    size_t used = 0;
    int rc = 0;

    if (!line)
        return -ENOMEM;
    *msg = NULL;
    /* Byte by byte up to the newline: replies are small and this never reads past the line,
     * so a caller may go on to use the socket for something else. */
    while (used < MOS_CONTROL_MAX_LINE - 1) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr == 0) {
            rc = -ETIMEDOUT;
            break;
        }
        if (pr < 0 && errno == EINTR)
            continue;
        ssize_t n = pr < 0 ? -1 : read(fd, line + used, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n == 0 ? MOS_E_PEER_GONE : -errno;
            break;
        }
        if (line[used] == '\n')
            break;
        used++;
    }
    if (rc == 0)
        rc = used < MOS_CONTROL_MAX_LINE - 1 ? mos_control_parse(line, used, msg) : MOS_E_PROTO;
    free(line);
    return rc;
}

int mos_control_parse(const char *text, size_t len, struct json_object **msg)
{
    struct json_tokener *tok;
    struct json_object *o;
    size_t end;
    int ok;

    *msg = NULL;
    /* a NUL would end the text json-c sees: what follows it would be accepted unread */
    if (len > MOS_CONTROL_MAX_LINE || memchr(text, '\0', len))
        return MOS_E_PROTO;
    tok = json_tokener_new_ex(MOS_CONTROL_MAX_DEPTH);
    if (!tok)
        return -ENOMEM;
    /* strict: no "09E" read as 9 (the fuzzer's find), no trailing commas; what the writers
     * (json-c itself) print is strict JSON */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, text, (int)len);
    ok = o && json_tokener_get_error(tok) == json_tokener_success &&
         json_object_is_type(o, json_type_object);
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    for (; ok && end < len; end++) /* one object, white space after it, nothing else */
        ok = strchr(" \t\r\n", text[end]) != NULL;
    if (!ok) {
        json_object_put(o);
        return MOS_E_PROTO;
    }
    *msg = o;
    return 0;
}

int mos_control_call(const char *path, struct json_object *req, struct json_object **resp)
{
    int fd = mos_control_connect(path), rc;

    *resp = NULL;
    if (fd < 0)
        return fd;
    rc = mos_control_send(fd, req);
    if (rc == 0)
        rc = mos_control_recv(fd, resp, 300000); /* a migration of a large job takes a while */
    close(fd);
    if (rc == 0 && !json_object_get_boolean(json_object_object_get(*resp, "ok")))
        rc = MOS_E_PROTO;
    return rc;
}

const char *mos_json_str(struct json_object *o, const char *key, const char *fallback)
{
    struct json_object *v;

    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return fallback;
}

long long mos_json_int(struct json_object *o, const char *key, long long fallback)
{
    struct json_object *v;

    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    return fallback;
}

int mos_control_ask(const char *prog, const char *config, struct json_object *req,
                    struct json_object **resp)
{
    struct mos_config cfg;
    char path[108];
    int self, rc;

    *resp = NULL;
    if (mos_runtime_config(config, &cfg, &self) != 0)
        return 1;
    rc = mos_control_socket_path(&cfg, self, path, sizeof(path));
    mos_config_free(&cfg);
    if (rc == 0)
        rc = mos_control_call(path, req, resp);
    if (rc == MOS_E_PROTO && *resp)
        fprintf(stderr, "%s: %s\n", prog, mos_json_str(*resp, "error", "refused"));
    else if (rc != 0)
        fprintf(stderr, "%s: cannot ask mosd at %s: %s\n", prog, path, mos_strerror(rc));
    if (rc != 0) {
        json_object_put(*resp);
        *resp = NULL;
    }
    return rc;
}
