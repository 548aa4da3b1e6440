/* libsodium provides HMAC-SHA-256, constant-time comparison and the random source: a small,
 * audited library with no configuration to get wrong. */
#include "mos/key.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int sodium_ready(void)
{
    /* sodium_init is idempotent and thread-safe; <0 only when no random source exists. */
    return sodium_init() < 0 ? -EIO : 0;
}

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int mos_key_parse(const void *buf, size_t len, mos_key_t *key)
{
    const uint8_t *p = buf, *end = p + len;
    const uint8_t *digits;
    size_t bin_len = 0;

    if (len > MOS_KEY_TEXT_MAX)
        return MOS_E_KEY;
    while (p < end && is_space(*p))
        p++;
    digits = p;
    while (p < end && !is_space(*p))
        p++;
    if (p - digits != 2 * MOS_KEY_BYTES)
        return MOS_E_KEY;
    for (const uint8_t *q = p; q < end; q++)
        if (!is_space(*q))
            return MOS_E_KEY;
    /* sodium_hex2bin stops at the first non-hex byte (a NUL included): bin_len catches it */
    if (sodium_hex2bin(key->bytes, sizeof(key->bytes), (const char *)digits, 2 * MOS_KEY_BYTES,
                       NULL, &bin_len, NULL) != 0 ||
        bin_len != MOS_KEY_BYTES)
        return MOS_E_KEY;
    return 0;
}

int mos_key_parse_hex(const char *text, mos_key_t *key)
{
    size_t len = strnlen(text, MOS_KEY_TEXT_MAX + 1);

    return mos_key_parse(text, len, key);
}

/* The file's bytes, up to cap; *len = cap + 1 when it holds more. */
static int read_upto(int fd, uint8_t *buf, size_t cap, size_t *len)
{
    size_t got = 0;

    while (got <= cap) {
        ssize_t n = read(fd, buf + got, cap + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mos_errno_status();
        if (n == 0)
            break;
        got += (size_t)n;
    }
    *len = got;
    return 0;
}

int mos_key_load(const char *path, mos_key_t *key)
{
    uint8_t text[MOS_KEY_TEXT_MAX + 1];
    struct stat st;
    size_t len = 0;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = mos_errno_status();
        mos_err("key", "cannot open cluster key %s: %s", path, mos_strerror(rc));
        return rc;
    }
    if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
        close(fd);
        mos_err("key", "cluster key %s is readable by others (mode %03o); chmod 600 it", path,
                st.st_mode & 0777);
        return MOS_E_KEY;
    }
    rc = read_upto(fd, text, MOS_KEY_TEXT_MAX, &len);
    close(fd);
    if (rc != 0) {
        mos_err("key", "cannot read cluster key %s: %s", path, mos_strerror(rc));
        return rc;
    }
    rc = mos_key_parse(text, len, key);
    sodium_memzero(text, sizeof(text));
    if (rc != 0) {
        mos_err("key", "cluster key %s: expected 64 hex digits and nothing else (at most %u "
                "bytes with white space)", path, MOS_KEY_TEXT_MAX);
        return MOS_E_KEY;
    }
    return 0;
}

int mos_key_generate(const char *path, mos_key_t *key)
{
    char hex[2 * MOS_KEY_BYTES + 2];
    int fd, rc = 0;

    if (sodium_ready() != 0)
        return -EIO;
    randombytes_buf(key->bytes, sizeof(key->bytes));
    sodium_bin2hex(hex, sizeof(hex), key->bytes, sizeof(key->bytes));
    strcat(hex, "\n");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = mos_errno_status();
        mos_err("key", "cannot create cluster key %s: %s", path, mos_strerror(rc));
        return rc;
    }
    if (write(fd, hex, strlen(hex)) != (ssize_t)strlen(hex))
        rc = -EIO;
    if (close(fd) != 0 && rc == 0)
        rc = mos_errno_status();
    if (rc != 0)
        mos_err("key", "cannot write cluster key %s: %s", path, mos_strerror(rc));
    return rc;
}

void mos_key_mac(const mos_key_t *key, const struct mos_mac_part *parts, size_t n,
                 uint8_t mac[MOS_MAC_BYTES])
{
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, key->bytes, sizeof(key->bytes));
    for (size_t i = 0; i < n; i++)
        crypto_auth_hmacsha256_update(&st, parts[i].data, parts[i].len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof(st));
}

int mos_key_mac_verify(const mos_key_t *key, const struct mos_mac_part *parts, size_t n,
                       const uint8_t mac[MOS_MAC_BYTES])
{
    uint8_t want[MOS_MAC_BYTES];
    int same;

    mos_key_mac(key, parts, n, want);
    same = sodium_memcmp(want, mac, MOS_MAC_BYTES) == 0;
    return same ? 0 : MOS_E_AUTH;
}

void mos_random_bytes(void *buf, size_t len)
{
    if (sodium_ready() != 0) {
        /* No kernel random source at all: nothing safe can be made; stop loudly. */
        mos_err("key", "no random source");
        abort();
    }
    randombytes_buf(buf, len);
}
