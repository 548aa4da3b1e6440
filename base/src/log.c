#include "mos/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void stderr_sink(enum mos_log_level level, const char *component, const char *text,
                        void *arg)
{
    (void)arg;
    fprintf(stderr, "mos[%s]: %s: %s\n", component, level_names[level], text);
}

static mos_log_sink_t log_sink = stderr_sink;
static void *log_sink_arg;
static int log_level = -1; /* -1: not yet read from MOS_LOG */

void mos_log_set_sink(mos_log_sink_t sink, void *arg)
{
    log_sink = sink ? sink : stderr_sink;
    log_sink_arg = sink ? arg : NULL;
}

void mos_log_set_level(enum mos_log_level level)
{
    log_level = level;
}

int mos_log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (name && strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

enum mos_log_level mos_log_get_level(void)
{
    if (log_level < 0) {
        int parsed = mos_log_level_parse(getenv("MOS_LOG"));
        log_level = parsed >= 0 ? parsed : MOS_LOG_INFO;
    }
    return (enum mos_log_level)log_level;
}

void mos_vlog(enum mos_log_level level, const char *component, const char *fmt, va_list ap)
{
    char text[1024];

    if (level > mos_log_get_level())
        return;
    vsnprintf(text, sizeof(text), fmt, ap);
    log_sink(level, component ? component : "mos", text, log_sink_arg);
}

void mos_log(enum mos_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mos_vlog(level, component, fmt, ap);
    va_end(ap);
}
