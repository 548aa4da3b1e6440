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

int mos_key_parse_hex(const char *text, mos_key_t *key)
{
    char hex[2 * MOS_KEY_BYTES + 1];
    size_t n = 0;
    size_t bin_len = 0;

    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
        text++;
    while (text[n] && text[n] != ' ' && text[n] != '\t' && text[n] != '\n' && text[n] != '\r')
        n++;
    if (n != 2 * MOS_KEY_BYTES)
        return MOS_E_KEY;
    for (const char *p = text + n; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return MOS_E_KEY;
    memcpy(hex, text, n);
    hex[n] = '\0';
    if (sodium_hex2bin(key->bytes, sizeof(key->bytes), hex, n, NULL, &bin_len, NULL) != 0 ||
        bin_len != MOS_KEY_BYTES)
        return MOS_E_KEY;
    return 0;
}

int mos_key_load(const char *path, mos_key_t *key)
{
    char text[256];
    struct stat st;
    ssize_t len;
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
    len = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (len < 0) {
        rc = mos_errno_status();
        mos_err("key", "cannot read cluster key %s: %s", path, mos_strerror(rc));
        return rc;
    }
    text[len] = '\0';
    if (mos_key_parse_hex(text, key) != 0) {
        mos_err("key", "cluster key %s: expected 64 hex digits", path);
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
