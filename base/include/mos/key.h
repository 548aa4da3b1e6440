/* The cluster key: a 256-bit secret every node of a cluster holds. Gossip datagrams carry an
 * HMAC of it; transport connections prove it before any other message with the
 * challenge-response of mos/auth.h (which per-job tokens use as well).
 *
 * On disk the key file holds 64 hex digits and a newline, mode 0600. */
#ifndef MOS_KEY_H
#define MOS_KEY_H

#include <stddef.h>
#include <stdint.h>

#define MOS_KEY_BYTES 32
#define MOS_MAC_BYTES 32 /* HMAC-SHA-256 */

typedef struct mos_key {
    uint8_t bytes[MOS_KEY_BYTES];
} mos_key_t;

/* Read a key file. Returns 0, -errno, or MOS_E_KEY (wrong length, not hex, or readable by
 * others; the error is logged with the path). */
int mos_key_load(const char *path, mos_key_t *key);
/* Make a fresh random key and write it to path (mode 0600, not overwriting). */
int mos_key_generate(const char *path, mos_key_t *key);
/* The most bytes a key file (or a hex token) may hold: the digits and white space. */
#define MOS_KEY_TEXT_MAX 256u
/* Parse len bytes: 64 hex digits, white space (space, tab, CR, LF) around them and nothing
 * else (no NUL, no second word, at most MOS_KEY_TEXT_MAX bytes). 0 or MOS_E_KEY. */
int mos_key_parse(const void *buf, size_t len, mos_key_t *key);
/* The same on a NUL-terminated string (a token in a JSON message). */
int mos_key_parse_hex(const char *text, mos_key_t *key);

/* HMAC-SHA-256 over the concatenation of n (pointer, length) parts. */
struct mos_mac_part {
    const void *data;
    size_t len;
};
void mos_key_mac(const mos_key_t *key, const struct mos_mac_part *parts, size_t n,
                 uint8_t mac[MOS_MAC_BYTES]);
/* Constant-time check of a MAC over the parts: 0 if it matches, MOS_E_AUTH if not. */
int mos_key_mac_verify(const mos_key_t *key, const struct mos_mac_part *parts, size_t n,
                       const uint8_t mac[MOS_MAC_BYTES]);
/* Random bytes from the kernel (for challenges and nonces). */
void mos_random_bytes(void *buf, size_t len);

#endif
