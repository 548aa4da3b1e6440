/* The INI syntax is parsed by libinih (Debian libinih-dev); this file only maps names to
 * fields through one table, so the file format, the defaults and the help text agree. */
#include "mos/config.h"

#include "mos/log.h"
#include "mos/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* What libinih reads as one line: INI_MAX_LINE bytes hold the text, its newline and a NUL. */
#define CONFIG_MAX_LINE (INI_MAX_LINE - 2)

enum setting_type { SETTING_INT, SETTING_STRING };

struct setting {
    const char *name;
    enum setting_type type;
    const char *def;
    long min, max;      /* SETTING_INT range; SETTING_STRING: max = buffer size */
    size_t offset;
    const char *doc;
};

#define INT_SETTING(n, field, d, lo, hi, text)                                                \
    {.name = n, .type = SETTING_INT, .def = d, .min = lo, .max = hi,                          \
     .offset = offsetof(struct mos_config, field), .doc = text}
#define STR_SETTING(n, field, d, text)                                                        \
    {.name = n, .type = SETTING_STRING, .def = d,                                             \
     .max = sizeof(((struct mos_config *)0)->field),                                          \
     .offset = offsetof(struct mos_config, field), .doc = text}

static const struct setting cluster_settings[] = {
    STR_SETTING("key_file", key_file, "",
                "cluster key (64 hex digits, mode 0600); empty: one-node cluster"),
    STR_SETTING("transport", transport, "auto", "page transport: auto, tcp or verbs"),
    STR_SETTING("guest_cgroup", guest_cgroup, "",
                "cgroup directory guests run in (%n: the node's name); its CPU quota is what "
                "the node offers; empty: none"),
    STR_SETTING("guest_memory_cgroup", guest_memory_cgroup, "",
                "v1 memory cgroup directory guests are charged in (%n: the node's name), where "
                "memory is a controller of its own; its limit is the memory the node offers "
                "(with cgroup v2, guest_cgroup's memory.max is); empty: none"),
    STR_SETTING("socket", socket_path, "/run/mos/mosd.sock", "mosd's local command socket; %n stands for the node's name"),
    STR_SETTING("state_dir", state_dir, "/run/mos/%n",
                "root's directory (0700) where mosd keeps its job table, so that a restarted "
                "mosd takes its jobs back; %n stands for the node's name"),
    STR_SETTING("metrics_listen", metrics_listen, "",
                "ADDR:PORT where mosd serves its figures to Prometheus (GET /metrics), e.g. "
                "127.0.0.1:9771 or [::1]:9771; bind it to loopback or a management network; "
                "empty: off"),
    STR_SETTING("live_mode", live_mode, "off",
                "off: every move stops the job for the whole copy; pre: a job leaving home with "
                "at least live_min_mib MiB resident is moved live (its memory sent while it "
                "runs, then only what it wrote), by the balancer, mosctl expel and mosmigrate "
                "alike (mosmigrate --live asks for it on any move from home)"),
    INT_SETTING("live_min_mib", live_min_mib, "256", 0, 1 << 30,
                "resident memory from which live_mode applies, in MiB"),
    INT_SETTING("transport_port", transport_port, "4770", 1, 65535,
                "TCP port (and RDMA CM port) for migrations and deputy traffic"),
    INT_SETTING("gossip_port", gossip_port, "4771", 1, 65535, "UDP port for gossip"),
    INT_SETTING("gossip_interval_ms", gossip_interval_ms, "1000", 10, 60000,
                "gossip time step"),
    INT_SETTING("gossip_window", gossip_window, "16", 1, 4096,
                "number of youngest entries sent with each gossip message"),
    INT_SETTING("dead_after_steps", dead_after_steps, "0", 0, 1000000,
                "a node whose entry is older than this many steps is suspect (probed, then "
                "presumed dead); 0: automatic, from the ages gossip produces at the cluster's "
                "size and window"),
    INT_SETTING("balance_interval_ms", balance_interval_ms, "1000", 10, 600000,
                "how often the load balancer decides"),
    INT_SETTING("min_residence_ms", min_residence_ms, "3000", 0, 86400000,
                "a guest stays this long on a node before it may move again"),
    INT_SETTING("stability_margin_pct", stability_margin_pct, "20", 0, 1000,
                "cost reduction needed beyond the predicted migration cost, in percent"),
    INT_SETTING("balance", balance, "1", 0, 1,
                "1: mosd moves jobs to balance the load by itself; 0: only on request"),
    INT_SETTING("mem_low_pct", mem_low_pct, "10", 1, 90,
                "free memory below this percentage of the node's starts memory ushering: the "
                "largest movable job goes where it fits, before the node swaps or kills"),
    INT_SETTING("balance_calls", balance_calls, "0", 0, 1,
                "1: the balancer counts what a job's calls home cost it away, as measured where "
                "it ran, and brings home a job they slow down (off by default: the deputy's "
                "latency grows with home's own load, which can keep chatty jobs home)"),
    INT_SETTING("migration_fixed_ms", migration_fixed_ms, "20", 0, 600000,
                "measured fixed cost of one migration (mosbench migrate: fixed_ms)"),
    INT_SETTING("migration_per_page_ns", migration_per_page_ns, "1000", 0, 100000000,
                "measured cost per 4 KiB page moved (mosbench migrate: per_page_us x 1000)"),
};
#define N_SETTINGS (sizeof(cluster_settings) / sizeof(cluster_settings[0]))

struct parse_state {
    struct mos_config *cfg;
    size_t nodes_cap;
    char error[256];
};

static int setting_apply(const struct setting *s, const char *value, struct mos_config *cfg,
                         char *err, size_t errlen)
{
    char *field = (char *)cfg + s->offset;

    if (s->type == SETTING_STRING) {
        if (strlen(value) >= (size_t)s->max) {
            snprintf(err, errlen, "%s is too long (at most %ld characters)", s->name,
                     s->max - 1);
            return -1;
        }
        strcpy(field, value);
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0' || v < s->min || v > s->max) {
        snprintf(err, errlen, "%s = '%s': expected a whole number from %ld to %ld", s->name,
                 value, s->min, s->max);
        return -1;
    }
    *(int *)field = (int)v;
    return 0;
}

static int valid_address(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;

    return inet_pton(AF_INET, addr, &a4) == 1 || inet_pton(AF_INET6, addr, &a6) == 1;
}

static int valid_node_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n >= MOS_NODE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static int node_add(struct parse_state *st, const char *name, const char *addr)
{
    struct mos_config *cfg = st->cfg;

    if (!valid_node_name(name)) {
        snprintf(st->error, sizeof(st->error), "bad node name '%s'", name);
        return -1;
    }
    if (strlen(addr) >= MOS_ADDR_MAX || !valid_address(addr)) {
        snprintf(st->error, sizeof(st->error), "node %s: '%s' is not a numeric IP address",
                 name, addr);
        return -1;
    }
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        if (strcmp(cfg->nodes[i].name, name) == 0 || strcmp(cfg->nodes[i].addr, addr) == 0) {
            snprintf(st->error, sizeof(st->error), "node %s = %s repeats node %s = %s", name,
                     addr, cfg->nodes[i].name, cfg->nodes[i].addr);
            return -1;
        }
    }
    if (cfg->n_nodes >= MOS_CONFIG_MAX_NODES) {
        snprintf(st->error, sizeof(st->error), "more than %d nodes", MOS_CONFIG_MAX_NODES);
        return -1;
    }
    if (cfg->n_nodes == st->nodes_cap) {
        size_t cap = st->nodes_cap ? st->nodes_cap * 2 : 16;
        struct mos_node_addr *n = realloc(cfg->nodes, cap * sizeof(*n));
        if (!n) {
            snprintf(st->error, sizeof(st->error), "out of memory");
            return -1;
        }
        cfg->nodes = n;
        st->nodes_cap = cap;
    }
    struct mos_node_addr *node = &cfg->nodes[cfg->n_nodes++];
    memset(node, 0, sizeof(*node));
    strcpy(node->name, name);
    strcpy(node->addr, addr);
    return 0;
}

static int config_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse_state *st = user;

    if (strcmp(section, "nodes") == 0)
        return node_add(st, name, value) == 0;
    if (strcmp(section, "cluster") == 0) {
        for (size_t i = 0; i < N_SETTINGS; i++)
            if (strcmp(cluster_settings[i].name, name) == 0)
                return setting_apply(&cluster_settings[i], value, st->cfg, st->error,
                                     sizeof(st->error)) == 0;
        snprintf(st->error, sizeof(st->error), "unknown setting '%s' in [cluster]", name);
        return 0;
    }
    snprintf(st->error, sizeof(st->error), "unknown section [%s]", section);
    return 0;
}

void mos_config_defaults(struct mos_config *cfg)
{
    char err[128];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_SETTINGS; i++)
        setting_apply(&cluster_settings[i], cluster_settings[i].def, cfg, err, sizeof(err));
}

static int config_finish(struct mos_config *cfg, const char *name)
{
    if (strcmp(cfg->transport, "auto") && strcmp(cfg->transport, "tcp") &&
        strcmp(cfg->transport, "verbs")) {
        mos_err("config", "%s: transport = '%s': expected auto, tcp or verbs", name,
                cfg->transport);
        return MOS_E_CONFIG;
    }
    if (strcmp(cfg->live_mode, "off") && strcmp(cfg->live_mode, "pre")) {
        mos_err("config", "%s: live_mode = '%s': expected off or pre%s", name, cfg->live_mode,
                strcmp(cfg->live_mode, "post") ? "" : " (post-copy is not implemented)");
        return MOS_E_CONFIG;
    }
    if (cfg->n_nodes == 0) {
        struct parse_state st = {.cfg = cfg};
        node_add(&st, "localhost", "127.0.0.1");
    } else if (cfg->key_file[0] == '\0' && cfg->n_nodes > 1) {
        mos_err("config", "%s: a cluster of %zu nodes needs key_file in [cluster]", name,
                cfg->n_nodes);
        return MOS_E_CONFIG;
    }
    return 0;
}

/* libinih reads a line in pieces of INI_MAX_LINE bytes and would take the rest of a long
 * line for a line of its own: refuse it by number instead of misreading it. */
static int long_line(const char *text)
{
    int line = 1;
    size_t len = 0;

    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            line++;
            len = 0;
        } else if (++len > CONFIG_MAX_LINE) {
            return line;
        }
    }
    return 0;
}

int mos_config_parse(const char *text, const char *name, struct mos_config *cfg)
{
    struct parse_state st = {.cfg = cfg};
    int line;

    mos_config_defaults(cfg);
    line = long_line(text);
    if (line != 0) {
        mos_err("config", "%s:%d: line longer than %d characters", name, line, CONFIG_MAX_LINE);
        return MOS_E_CONFIG;
    }
    line = ini_parse_string(text, config_ini_handler, &st);
    if (line != 0) {
        if (st.error[0] == '\0')
            snprintf(st.error, sizeof(st.error), "syntax error");
        mos_err("config", "%s:%d: %s", name, line, st.error);
        mos_config_free(cfg);
        return MOS_E_CONFIG;
    }
    snprintf(cfg->path, sizeof(cfg->path), "%s", name);
    int rc = config_finish(cfg, name);
    if (rc != 0)
        mos_config_free(cfg);
    return rc;
}

int mos_config_load(const char *path, struct mos_config *cfg)
{
    FILE *f = fopen(path, "re");
    char *text;
    long len;
    int rc;

    mos_config_defaults(cfg);
    if (!f) {
        rc = mos_errno_status();
        mos_err("config", "cannot open %s: %s", path, mos_strerror(rc));
        return rc;
    }
    /* 1 MiB is far more than 65536 node lines need; it bounds what a stray path can cost. */
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || len > (1 << 20) ||
        fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        mos_err("config", "%s: not a regular file of at most 1 MiB", path);
        return MOS_E_CONFIG;
    }
    text = malloc((size_t)len + 1);
    if (!text) {
        fclose(f);
        return -ENOMEM;
    }
    size_t got = fread(text, 1, (size_t)len, f);
    fclose(f);
    text[got] = '\0';
    if (strlen(text) != got) {
        free(text);
        mos_err("config", "%s: contains a NUL byte", path);
        return MOS_E_CONFIG;
    }
    rc = mos_config_parse(text, path, cfg);
    free(text);
    return rc;
}

const char *mos_config_choose_path(const char *explicit_path, int *may_be_absent)
{
    const char *env = getenv("MOS_CONF");

    *may_be_absent = 0;
    if (explicit_path)
        return explicit_path;
    if (env && *env)
        return env;
    *may_be_absent = 1;
    return MOS_CONFIG_DEFAULT_PATH;
}

void mos_config_free(struct mos_config *cfg)
{
    free(cfg->nodes);
    cfg->nodes = NULL;
    cfg->n_nodes = 0;
}

static int same_address(const struct sockaddr *sa, const char *addr)
{
    char text[INET6_ADDRSTRLEN];
    const void *raw;

    if (sa->sa_family == AF_INET)
        raw = &((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        raw = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    else
        return 0;
    if (!inet_ntop(sa->sa_family, raw, text, sizeof(text)))
        return 0;
    return strcmp(text, addr) == 0;
}

int mos_config_find_self(const struct mos_config *cfg)
{
    struct ifaddrs *ifs, *ifa;
    int found = MOS_E_UNKNOWN_NODE;

    if (getifaddrs(&ifs) != 0)
        return mos_errno_status();
    for (size_t i = 0; i < cfg->n_nodes && found < 0; i++)
        for (ifa = ifs; ifa && found < 0; ifa = ifa->ifa_next)
            if (ifa->ifa_addr && same_address(ifa->ifa_addr, cfg->nodes[i].addr))
                found = (int)i;
    freeifaddrs(ifs);
    return found;
}

int mos_config_find_node(const struct mos_config *cfg, const char *name_or_addr)
{
    for (size_t i = 0; i < cfg->n_nodes; i++)
        if (strcmp(cfg->nodes[i].name, name_or_addr) == 0 ||
            strcmp(cfg->nodes[i].addr, name_or_addr) == 0)
            return (int)i;
    return MOS_E_UNKNOWN_NODE;
}

/* Comment lines wrapped at the last space before 76 columns, so that the text stays a
 * config file libinih reads (and one a terminal shows). */
static void describe_comment(FILE *out, const char *text)
{
    const size_t width = 76;

    while (strlen(text) > width) {
        size_t cut = width;
        while (cut > 0 && text[cut] != ' ')
            cut--;
        if (cut == 0)
            cut = strcspn(text, " ");
        fprintf(out, "# %.*s\n", (int)cut, text);
        text += cut;
        while (*text == ' ')
            text++;
    }
    if (*text)
        fprintf(out, "# %s\n", text);
}

void mos_config_describe(FILE *out)
{
    fprintf(out, "[cluster]\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &cluster_settings[i];
        char doc[512];
        if (s->type == SETTING_INT)
            snprintf(doc, sizeof(doc), "%s (%ld..%ld)", s->doc, s->min, s->max);
        else
            snprintf(doc, sizeof(doc), "%s", s->doc);
        describe_comment(out, doc);
        fprintf(out, "%s = %s\n", s->name, s->def);
    }
    fprintf(out, "\n[nodes]\n# name = numeric address, one line per node\n");
}

int mos_config_expand_node(const char *text, const char *node_name, char *out, size_t len)
{
    size_t used = 0;

    for (const char *p = text; *p; p++) {
        const char *piece = p;
        size_t n = 1;
        if (p[0] == '%' && p[1] == 'n') {
            piece = node_name;
            n = strlen(node_name);
            p++;
        }
        if (used + n >= len)
            return -ENAMETOOLONG;
        memcpy(out + used, piece, n);
        used += n;
    }
    out[used] = '\0';
    return 0;
}
