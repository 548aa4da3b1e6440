/* The challenge-response of mos/auth.h. */
#include "mos/auth.h"

#include "mos/status.h"

#include <string.h>

/* What both ends know once the nonces are exchanged. */
struct transcript {
    uint8_t nc[MOS_AUTH_NONCE_BYTES];
    uint8_t ns[MOS_AUTH_NONCE_BYTES];
};

static void proof_make(const struct mos_auth *a, const char *role, const struct transcript *t,
                       uint8_t mac[MOS_MAC_BYTES])
{
    struct mos_mac_part parts[] = {{role, strlen(role)}, {t->nc, sizeof(t->nc)},
                                   {t->ns, sizeof(t->ns)}};

    mos_key_mac(a->key, parts, 3, mac);
}

static int proof_check(const struct mos_auth *a, const char *role, const struct transcript *t,
                       const uint8_t mac[MOS_MAC_BYTES])
{
    struct mos_mac_part parts[] = {{role, strlen(role)}, {t->nc, sizeof(t->nc)},
                                   {t->ns, sizeof(t->ns)}};

    if (mos_key_mac_verify(a->key, parts, 3, mac) == 0)
        return 0;
    if (a->io.refuse)
        a->io.refuse(a->io.arg);
    return MOS_E_AUTH;
}

static void session_derive(const struct mos_auth *a, const struct transcript *t,
                           uint8_t session[MOS_AUTH_SESSION_BYTES])
{
    static const char label[] = "session";
    struct mos_mac_part parts[] = {{label, sizeof(label) - 1},
                                   {a->client_role, strlen(a->client_role)},
                                   {a->server_role, strlen(a->server_role)},
                                   {t->nc, sizeof(t->nc)},
                                   {t->ns, sizeof(t->ns)}};

    if (session)
        mos_key_mac(a->key, parts, 5, session);
}

int mos_auth_client(const struct mos_auth *a, uint8_t session[MOS_AUTH_SESSION_BYTES])
{
    uint8_t proof[MOS_AUTH_SERVER_PROOF_BYTES], mac[MOS_MAC_BYTES];
    struct transcript t;
    int rc;

    mos_random_bytes(t.nc, sizeof(t.nc));
    if ((rc = a->io.send(a->io.arg, MOS_AUTH_CHALLENGE, t.nc, sizeof(t.nc))) != 0 ||
        (rc = a->io.recv(a->io.arg, MOS_AUTH_SERVER_PROOF, proof, sizeof(proof))) != 0)
        return rc;
    memcpy(t.ns, proof, sizeof(t.ns));
    if ((rc = proof_check(a, a->server_role, &t, proof + MOS_AUTH_NONCE_BYTES)) != 0)
        return rc;
    proof_make(a, a->client_role, &t, mac);
    if ((rc = a->io.send(a->io.arg, MOS_AUTH_CLIENT_PROOF, mac, sizeof(mac))) != 0)
        return rc;
    session_derive(a, &t, session);
    return 0;
}

int mos_auth_server(const struct mos_auth *a, uint8_t session[MOS_AUTH_SESSION_BYTES])
{
    uint8_t proof[MOS_AUTH_SERVER_PROOF_BYTES], mac[MOS_MAC_BYTES];
    struct transcript t;
    int rc;

    if ((rc = a->io.recv(a->io.arg, MOS_AUTH_CHALLENGE, t.nc, sizeof(t.nc))) != 0)
        return rc;
    mos_random_bytes(t.ns, sizeof(t.ns));
    memcpy(proof, t.ns, sizeof(t.ns));
    proof_make(a, a->server_role, &t, proof + MOS_AUTH_NONCE_BYTES);
    if ((rc = a->io.send(a->io.arg, MOS_AUTH_SERVER_PROOF, proof, sizeof(proof))) != 0 ||
        (rc = a->io.recv(a->io.arg, MOS_AUTH_CLIENT_PROOF, mac, sizeof(mac))) != 0)
        return rc;
    if ((rc = proof_check(a, a->client_role, &t, mac)) != 0)
        return rc;
    session_derive(a, &t, session);
    return 0;
}
