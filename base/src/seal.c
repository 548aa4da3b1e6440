/* mos/seal.h on libsodium: crypto_kdf (BLAKE2b) derives the keys, ChaCha20-Poly1305 seals,
 * Poly1305 with a ChaCha20-made one-time key authenticates bulk data: the fastest MAC
 * libsodium has (keyed BLAKE2b is several times slower), and 2.4 times cheaper than sealing
 * (`mosbench seal` measures both against memcpy). */
#include "mos/seal.h"

#include "mos/frame.h"
#include "mos/status.h"

#include <sodium.h>
#include <string.h>

_Static_assert(MOS_SEAL_TAG_BYTES == crypto_aead_chacha20poly1305_ietf_ABYTES, "AEAD tag");
_Static_assert(MOS_SEAL_TAG_BYTES == crypto_onetimeauth_poly1305_BYTES, "MAC tag");
_Static_assert(MOS_SEAL_KEY_BYTES == crypto_aead_chacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(MOS_AUTH_SESSION_BYTES == crypto_kdf_KEYBYTES, "session secret as a KDF key");
_Static_assert(sizeof(crypto_onetimeauth_poly1305_state) <= sizeof(((struct mos_seal_mac *)0)->state),
               "MAC state fits");

/* Nonces: 4 bytes saying which construction, then the 8-byte counter or caller's nonce, so the
 * AEAD and the MAC never share a ChaCha20 block under one key. */
enum { NONCE_AEAD = 0x41454144u, NONCE_MAC = 0x4d414321u };

static void nonce_make(uint32_t kind, uint64_t n, uint8_t out[12])
{
    mos_put_le32(out, kind);
    mos_put_le64(out + 4, n);
}

static void key_derive(uint8_t out[MOS_SEAL_KEY_BYTES], const uint8_t session[MOS_AUTH_SESSION_BYTES],
                       enum mos_seal_channel channel, int client_to_server)
{
    static const char context[crypto_kdf_CONTEXTBYTES] = {'m', 'o', 's', '-', 's', 'e', 'a', 'l'};

    crypto_kdf_derive_from_key(out, MOS_SEAL_KEY_BYTES, (uint64_t)channel * 2 + !client_to_server,
                               context, session);
}

void mos_seal_init(struct mos_seal *s, const uint8_t session[MOS_AUTH_SESSION_BYTES],
                   enum mos_seal_channel channel, int is_client)
{
    /* idempotent; it picks the fastest ChaCha20 and Poly1305 for this CPU */
    if (sodium_init() < 0)
        memset(s, 0, sizeof(*s)); /* no random source: nothing here needs one */
    memset(s, 0, sizeof(*s));
    key_derive(s->tx.bytes, session, channel, is_client);
    key_derive(s->rx.bytes, session, channel, !is_client);
}

void mos_seal_wipe(struct mos_seal *s)
{
    sodium_memzero(s, sizeof(*s));
}

void mos_seal_box(struct mos_seal_key *k, const void *ad, size_t ad_len, const void *in,
                  void *out, size_t len, uint8_t tag[MOS_SEAL_TAG_BYTES])
{
    uint8_t nonce[12];

    nonce_make(NONCE_AEAD, k->seq++, nonce);
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(out, tag, NULL, in, len, ad, ad_len, NULL,
                                                        nonce, k->bytes);
}

int mos_seal_unbox(struct mos_seal_key *k, const void *ad, size_t ad_len, const void *in,
                   void *out, size_t len, const uint8_t tag[MOS_SEAL_TAG_BYTES])
{
    uint8_t nonce[12];

    nonce_make(NONCE_AEAD, k->seq++, nonce);
    if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, NULL, in, len, tag, ad, ad_len,
                                                           nonce, k->bytes) != 0) {
        if (len)
            memset(out, 0, len);
        return MOS_E_TAMPERED;
    }
    return 0;
}

void mos_seal_record(struct mos_seal_key *k, const void *in, size_t len, uint8_t *out)
{
    mos_put_le32(out, (uint32_t)len);
    mos_seal_box(k, out, MOS_SEAL_RECORD_HDR_BYTES, in, out + MOS_SEAL_RECORD_HDR_BYTES, len,
                 out + MOS_SEAL_RECORD_HDR_BYTES + len);
}

int mos_unseal_record(struct mos_seal_key *k, uint8_t *buf, size_t avail, size_t max,
                      uint8_t **plain, size_t *len, size_t *used)
{
    size_t n;
    int rc;

    if (avail < MOS_SEAL_RECORD_HDR_BYTES)
        return MOS_E_TRUNCATED;
    n = mos_get_le32(buf);
    if (n > max)
        return MOS_E_LIMIT;
    if (avail < n + MOS_SEAL_RECORD_EXTRA)
        return MOS_E_TRUNCATED;
    uint8_t *box = buf + MOS_SEAL_RECORD_HDR_BYTES;
    if ((rc = mos_seal_unbox(k, buf, MOS_SEAL_RECORD_HDR_BYTES, box, box, n, box + n)) < 0)
        return rc;
    *plain = box;
    *len = n;
    *used = n + MOS_SEAL_RECORD_EXTRA;
    return 0;
}

void mos_seal_mac_begin(const struct mos_seal_key *k, uint64_t nonce, struct mos_seal_mac *m)
{
    uint8_t n[12], once[crypto_onetimeauth_poly1305_KEYBYTES];

    nonce_make(NONCE_MAC, nonce, n);
    crypto_stream_chacha20_ietf(once, sizeof(once), n, k->bytes);
    crypto_onetimeauth_poly1305_init((crypto_onetimeauth_poly1305_state *)m->state, once);
    sodium_memzero(once, sizeof(once));
}

void mos_seal_mac_add(struct mos_seal_mac *m, const void *data, size_t len)
{
    crypto_onetimeauth_poly1305_update((crypto_onetimeauth_poly1305_state *)m->state, data, len);
}

void mos_seal_mac_final(struct mos_seal_mac *m, uint8_t tag[MOS_SEAL_TAG_BYTES])
{
    crypto_onetimeauth_poly1305_final((crypto_onetimeauth_poly1305_state *)m->state, tag);
}

int mos_seal_mac_verify(struct mos_seal_mac *m, const uint8_t tag[MOS_SEAL_TAG_BYTES])
{
    uint8_t want[MOS_SEAL_TAG_BYTES];

    mos_seal_mac_final(m, want);
    return crypto_verify_16(want, tag) == 0 ? 0 : MOS_E_TAMPERED;
}
