/* Logging through one sink the program installs.
 *
 * Libraries log an error once, where it is understood, and return the status; callers do not
 * log it again. The default sink writes "mos[component]: level: text" lines to stderr. */
#ifndef MOS_LOG_H
#define MOS_LOG_H

#include <stdarg.h>

enum mos_log_level { MOS_LOG_ERROR = 0, MOS_LOG_WARN, MOS_LOG_INFO, MOS_LOG_DEBUG };

typedef void (*mos_log_sink_t)(enum mos_log_level level, const char *component,
                               const char *text, void *arg);

/* Install a sink (NULL restores the stderr sink). */
void mos_log_set_sink(mos_log_sink_t sink, void *arg);
/* Messages above this level are dropped. Default: INFO, or MOS_LOG=error|warn|info|debug. */
void mos_log_set_level(enum mos_log_level level);
enum mos_log_level mos_log_get_level(void);
/* Parse "error", "warn", "info", "debug"; returns -1 for anything else. */
int mos_log_level_parse(const char *name);

void mos_log(enum mos_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mos_vlog(enum mos_log_level level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define mos_err(comp, ...) mos_log(MOS_LOG_ERROR, comp, __VA_ARGS__)
#define mos_warn(comp, ...) mos_log(MOS_LOG_WARN, comp, __VA_ARGS__)
#define mos_info(comp, ...) mos_log(MOS_LOG_INFO, comp, __VA_ARGS__)
#define mos_dbg(comp, ...)                                                                    \
    do {                                                                                      \
        if (mos_log_get_level() >= MOS_LOG_DEBUG)                                             \
            mos_log(MOS_LOG_DEBUG, comp, __VA_ARGS__);                                        \
    } while (0)

#endif
