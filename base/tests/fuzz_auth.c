/* libFuzzer target: the challenge-response (mos/auth.h) against a peer that says whatever the
 * input says. The input is cut into the messages the exchange receives, as the client and as
 * the server; however it is cut, the exchange must fail (no input can know a MAC over our own
 * fresh nonce), with MOS_E_AUTH when the messages were whole or the cut status when not, and
 * refuse must have been called exactly when MOS_E_AUTH is returned. */
#include "mos/auth.h"
#include "mos/status.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct script {
    const uint8_t *p;
    size_t left;
    int refused;
};

static int script_send(void *arg, enum mos_auth_msg msg, const void *buf, size_t len)
{
    (void)arg, (void)msg, (void)buf, (void)len;
    return 0;
}

static int script_recv(void *arg, enum mos_auth_msg msg, void *buf, size_t len)
{
    struct script *s = arg;

    (void)msg;
    if (s->left < len)
        return s->left ? MOS_E_TRUNCATED : MOS_E_PEER_GONE;
    memcpy(buf, s->p, len);
    s->p += len, s->left -= len;
    return 0;
}

static void script_refuse(void *arg)
{
    ((struct script *)arg)->refused++;
}

static void run(const uint8_t *data, size_t size, int as_server)
{
    static const mos_key_t key = {{1, 2, 3, 4, 5, 6, 7, 8}};
    struct script s = {data, size, 0};
    const struct mos_auth a = {
        .key = &key,
        .client_role = "fuzz-client",
        .server_role = "fuzz-server",
        .io = {script_send, script_recv, script_refuse, &s},
    };
    uint8_t session[MOS_AUTH_SESSION_BYTES];
    size_t whole = as_server ? MOS_AUTH_CHALLENGE_BYTES + MOS_AUTH_CLIENT_PROOF_BYTES
                             : MOS_AUTH_SERVER_PROOF_BYTES;
    int rc = as_server ? mos_auth_server(&a, session) : mos_auth_client(&a, session);

    if (rc == 0 || (rc == MOS_E_AUTH) != (s.refused == 1) || s.refused > 1)
        abort();
    if (size >= whole ? rc != MOS_E_AUTH : rc != MOS_E_TRUNCATED && rc != MOS_E_PEER_GONE)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, 0);
    run(data, size, 1);
    return 0;
}
