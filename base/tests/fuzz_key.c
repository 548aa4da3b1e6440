/* libFuzzer target: the key file reader (mos_key_parse, what mos_key_load does with the file's
 * bytes). Whatever it accepts must be exactly 64 hex digits with only white space around them,
 * no longer than a key file may be, and decode to the bytes those digits spell; the string
 * form (mos_key_parse_hex) must agree with it on every input without a NUL. */
#include "mos/key.h"
#include "mos/status.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (uint8_t)tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* What an accepted input must look like, checked the slow way. */
static void check_accepted(const uint8_t *data, size_t size, const mos_key_t *key)
{
    size_t i = 0, n = 0;

    if (size > MOS_KEY_TEXT_MAX)
        abort();
    while (i < size && strchr(" \t\r\n", data[i]) && data[i])
        i++;
    if (size - i < 2 * MOS_KEY_BYTES)
        abort();
    for (; n < 2 * MOS_KEY_BYTES; n += 2) {
        int hi = hex_value(data[i + n]), lo = hex_value(data[i + n + 1]);
        if (hi < 0 || lo < 0 || key->bytes[n / 2] != (uint8_t)(hi << 4 | lo))
            abort();
    }
    for (i += n; i < size; i++)
        if (!data[i] || !strchr(" \t\r\n", data[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mos_key_t key, again;
    int rc = mos_key_parse(data, size, &key);

    if (rc != 0 && rc != MOS_E_KEY)
        abort();
    if (rc == 0)
        check_accepted(data, size, &key);
    if (!memchr(data, 0, size)) {
        char *text = malloc(size + 1);
        if (!text)
            return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        int rc2 = mos_key_parse_hex(text, &again);
        if (rc2 != rc || (rc == 0 && memcmp(key.bytes, again.bytes, sizeof(key.bytes)) != 0))
            abort();
        free(text);
    }
    return 0;
}
