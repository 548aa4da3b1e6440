/* The one challenge-response of mos: two ends prove to each other that they hold the same
 * 32-byte secret (the cluster key on transport connections, a per-job token on deputy and
 * exec links) before anything else crosses the link.
 *
 *   client -> server   CHALLENGE      nc                              (32 fresh random bytes)
 *   server -> client   SERVER_PROOF   ns | MAC(server_role | nc | ns)  (ns: 32 fresh bytes)
 *   client -> server   CLIENT_PROOF   MAC(client_role | nc | ns)
 *
 * MAC is HMAC-SHA-256 with the secret. Each side's own fresh nonce makes a recorded proof
 * worthless, and the role names bound into each MAC keep a proof from being reflected back as
 * the other side's. MACs are compared in constant time.
 *
 * The same transcript gives both ends one session secret,
 *   HMAC("session" | client_role | server_role | nc | ns),
 * which never crosses the wire; per-message keys can be derived from it later.
 *
 * The exchange knows nothing of sockets: the caller passes how one handshake message is sent
 * and received (raw bytes on a TCP stream for the deputy link, framed CHALLENGE and PROOF
 * messages for the transport). It logs nothing; the caller's io callbacks and the caller log. */
#ifndef MOS_AUTH_H
#define MOS_AUTH_H

#include "mos/key.h"

#include <stddef.h>
#include <stdint.h>

#define MOS_AUTH_NONCE_BYTES 32
#define MOS_AUTH_SESSION_BYTES 32

/* The three messages and their exact sizes. */
enum mos_auth_msg {
    MOS_AUTH_CHALLENGE = 0,   /* client -> server */
    MOS_AUTH_SERVER_PROOF = 1, /* server -> client */
    MOS_AUTH_CLIENT_PROOF = 2, /* client -> server */
};
#define MOS_AUTH_CHALLENGE_BYTES MOS_AUTH_NONCE_BYTES
#define MOS_AUTH_SERVER_PROOF_BYTES (MOS_AUTH_NONCE_BYTES + MOS_MAC_BYTES)
#define MOS_AUTH_CLIENT_PROOF_BYTES MOS_MAC_BYTES

/* How handshake messages travel. send and recv move one whole message of exactly len bytes
 * and return 0 or a status (the exchange returns it unchanged). */
struct mos_auth_io {
    int (*send)(void *arg, enum mos_auth_msg msg, const void *buf, size_t len);
    int (*recv)(void *arg, enum mos_auth_msg msg, void *buf, size_t len);
    /* Called once when the peer's proof is wrong, before MOS_E_AUTH is returned: the place to
     * tell the peer why it is dropped (the transport sends CLOSE). NULL: nothing to tell. */
    void (*refuse)(void *arg);
    void *arg;
};

struct mos_auth {
    const mos_key_t *key;
    const char *client_role; /* e.g. "mos-client" */
    const char *server_role; /* e.g. "mos-server"; not the same as client_role */
    struct mos_auth_io io;
};

/* Run the exchange as the client (the end that connected) or the server. Returns 0, and the
 * session secret in session when it is not NULL; MOS_E_AUTH when the peer's proof is wrong;
 * or what io's send or recv returned. */
int mos_auth_client(const struct mos_auth *a, uint8_t session[MOS_AUTH_SESSION_BYTES]);
int mos_auth_server(const struct mos_auth *a, uint8_t session[MOS_AUTH_SESSION_BYTES]);

#endif
