/* libFuzzer target: arbitrary bytes as a config file never crash the parser, and a config
 * that parses always has at least one node with a valid address. The same bytes as a size:
 * what parses reads back the same from its formatted spelling. */
#include "mos/config.h"
#include "mos/log.h"
#include "mos/size.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(enum mos_log_level l, const char *c, const char *t, void *a)
{
    (void)l, (void)c, (void)t, (void)a;
}

static void size_roundtrip(const char *text)
{
    uint64_t v, again;
    char buf[24];

    if (mos_size_parse(text, 1, &v) != 0)
        return;
    if (mos_size_parse(mos_size_format(v, buf, sizeof(buf)), 1, &again) != 0 || again != v)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mos_config cfg;
    char *text = malloc(size + 1);

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    mos_log_set_sink(quiet, NULL);
    if (mos_config_parse(text, "fuzz", &cfg) == 0) {
        if (cfg.n_nodes == 0)
            abort();
        mos_config_free(&cfg);
    }
    size_roundtrip(text);
    free(text);
    return 0;
}
