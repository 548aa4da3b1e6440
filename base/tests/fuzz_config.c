/* libFuzzer target: arbitrary bytes as a config file never crash the parser, and a config
 * that parses always has at least one node with a valid address. */
#include "mos/config.h"
#include "mos/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(enum mos_log_level l, const char *c, const char *t, void *a)
{
    (void)l, (void)c, (void)t, (void)a;
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
    free(text);
    return 0;
}
