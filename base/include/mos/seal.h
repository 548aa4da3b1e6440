/* Per-message protection after the handshake of mos/auth.h, with keys derived from its session
 * secret (libsodium):
 *
 *   mos_seal_box / mos_seal_unbox   ChaCha20-Poly1305 (IETF) AEAD: a message is encrypted and
 *                                   authenticated, and so is its header (the ad). The nonce is
 *                                   the direction's message counter, which both ends keep: a
 *                                   message replayed, dropped, reordered or sent back the
 *                                   other way fails to open.
 *   mos_seal_mac_*                  Poly1305 alone, over data that must not be copied (bulk
 *                                   pages: authenticated where they already are, not sealed).
 *                                   Its nonce is the caller's (carried in the message), for
 *                                   links that may deliver out of order; the caller checks it
 *                                   is fresh.
 *
 * Each (channel, direction) has its own key, so a message of one channel or direction never
 * verifies in another. Both ends of a session hold the same mos_seal with tx and rx swapped.
 * Nothing here logs: a failure is MOS_E_TAMPERED, and the caller knows what it was reading. */
#ifndef MOS_SEAL_H
#define MOS_SEAL_H

#include "mos/auth.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#define MOS_SEAL_TAG_BYTES 16
#define MOS_SEAL_KEY_BYTES 32

/* One direction: its key and the counter of messages boxed (tx) or opened (rx). */
struct mos_seal_key {
    uint8_t bytes[MOS_SEAL_KEY_BYTES];
    uint64_t seq;
};

struct mos_seal {
    struct mos_seal_key tx, rx;
};

/* Channels of one session: distinct keys for distinct streams of messages. */
enum mos_seal_channel {
    MOS_SEAL_CONTROL = 1, /* transport control messages, in order */
    MOS_SEAL_BULK = 2,    /* transport page frames and end markers */
    MOS_SEAL_LINK = 3,    /* a deputy or exec link */
};

/* Derive the keys of a channel from the session secret of mos_auth_client/server; is_client:
 * this end ran mos_auth_client. Counters start at 0. */
void mos_seal_init(struct mos_seal *s, const uint8_t session[MOS_AUTH_SESSION_BYTES],
                   enum mos_seal_channel channel, int is_client);
/* Forget the keys. */
void mos_seal_wipe(struct mos_seal *s);

/* Encrypt len bytes of in into out (they may be the same buffer) and make the tag over ad
 * and the ciphertext; the counter advances. */
void mos_seal_box(struct mos_seal_key *k, const void *ad, size_t ad_len, const void *in,
                  void *out, size_t len, uint8_t tag[MOS_SEAL_TAG_BYTES]);
/* Check the tag and decrypt (in may be out). 0, or MOS_E_TAMPERED (out is then zeroed). The
 * counter advances either way: the caller gives up the stream on a failure. */
int mos_seal_unbox(struct mos_seal_key *k, const void *ad, size_t ad_len, const void *in,
                   void *out, size_t len, const uint8_t tag[MOS_SEAL_TAG_BYTES]);

/* Sealed records on a byte stream, for links whose own frames are kept as they are (the deputy
 * and exec links): a record is
 *   u32 length (little-endian) | length bytes sealed | tag
 * with the length bound in as the ad. A record holds whole frames of the link's own format. */
#define MOS_SEAL_RECORD_HDR_BYTES 4
#define MOS_SEAL_RECORD_EXTRA (MOS_SEAL_RECORD_HDR_BYTES + MOS_SEAL_TAG_BYTES)
/* Seal len bytes of in as one record into out (len + MOS_SEAL_RECORD_EXTRA bytes). in may be
 * out + MOS_SEAL_RECORD_HDR_BYTES (sealed where it lies); no other overlap. */
void mos_seal_record(struct mos_seal_key *k, const void *in, size_t len, uint8_t *out);
/* Open the record at the start of buf (avail bytes), in place: 0 with *plain (inside buf),
 * *len and *used (the record's size on the stream); MOS_E_TRUNCATED when buf holds less than
 * the whole record (nothing consumed, the counter unchanged); MOS_E_LIMIT when the record is
 * longer than max (the stream cannot go on); MOS_E_TAMPERED. */
int mos_unseal_record(struct mos_seal_key *k, uint8_t *buf, size_t avail, size_t max,
                      uint8_t **plain, size_t *len, size_t *used);

/* An incremental Poly1305 with a one-time key made from k and nonce. */
struct mos_seal_mac {
    alignas(16) uint8_t state[256];
};
void mos_seal_mac_begin(const struct mos_seal_key *k, uint64_t nonce, struct mos_seal_mac *m);
void mos_seal_mac_add(struct mos_seal_mac *m, const void *data, size_t len);
void mos_seal_mac_final(struct mos_seal_mac *m, uint8_t tag[MOS_SEAL_TAG_BYTES]);
/* Constant-time: 0, or MOS_E_TAMPERED. */
int mos_seal_mac_verify(struct mos_seal_mac *m, const uint8_t tag[MOS_SEAL_TAG_BYTES]);

#endif
