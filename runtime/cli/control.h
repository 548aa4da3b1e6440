/* What mosd and the commands share: finding the node's config and mosd's command socket, and
 * the socket's protocol: one JSON object per line each way ({"op": ...} requests, {"ok": true,
 * ...} or {"ok": false, "error": "..."} replies). */
#ifndef MOS_RUNTIME_CONTROL_H
#define MOS_RUNTIME_CONTROL_H

#include "mos/config.h"

#include <json-c/json.h>
#include <stddef.h>

#define MOS_CONTROL_MAX_LINE (256u * 1024)
#define MOS_CONTROL_MAX_DEPTH 16 /* nesting of a message: requests use two or three levels */

/* Load the config the way every command does: an explicit path, else $MOS_CONF, else
 * /etc/mos/mos.conf, and the built-in one-node cluster when that default file is absent.
 * *self is this host's node index. Errors are logged; returns 0 or a status. */
int mos_runtime_config(const char *explicit_path, struct mos_config *cfg, int *self);

/* The command socket of node `self`, with %n replaced by the node's name. */
int mos_control_socket_path(const struct mos_config *cfg, int self, char *out, size_t len);

/* Connect to mosd's socket; -errno on failure (not logged: callers decide how loud to be). */
int mos_control_connect(const char *path);
/* Send one JSON object as a line. */
int mos_control_send(int fd, struct json_object *msg);
/* Read one line and parse it (timeout_ms < 0: wait for ever). MOS_E_PEER_GONE on EOF,
 * MOS_E_PROTO for a line that is not a JSON object, -ETIMEDOUT. */
int mos_control_recv(int fd, struct json_object **msg, int timeout_ms);
/* Parse one message of len bytes (a line without its newline, or a transport control
 * message): exactly one JSON object (json-c's strict mode), white space around it, no NUL, at
 * most MOS_CONTROL_MAX_LINE bytes and MOS_CONTROL_MAX_DEPTH levels. 0 with *msg (the caller's
 * to free), MOS_E_PROTO, or -ENOMEM. mosd's command socket and peer requests, and every
 * command's replies, are parsed here. */
int mos_control_parse(const char *text, size_t len, struct json_object **msg);

/* Connect, send req, read one reply, close. A reply {"ok": false} becomes MOS_E_PROTO with its
 * error text logged by the caller from *resp. */
int mos_control_call(const char *path, struct json_object *req, struct json_object **resp);

/* What every command does: load the node's config, find its mosd, send req, read the reply.
 * On failure prints one line "PROG: ..." (mosd's own error text, or why it could not be asked)
 * and returns non-zero; on success *resp is the reply (the caller frees it). */
int mos_control_ask(const char *prog, const char *config, struct json_object *req,
                    struct json_object **resp);

/* Field helpers for replies and requests; absent fields give the fallback. */
const char *mos_json_str(struct json_object *o, const char *key, const char *fallback);
long long mos_json_int(struct json_object *o, const char *key, long long fallback);

#endif
