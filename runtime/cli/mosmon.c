/* mosmon: the cluster as this node's gossip sees it, refreshed every second.
 *   mosmon                 live view until Ctrl-C: the table, a load and a memory bar per
 *                          node (as MOSIX's mon drew them) and this node's jobs, where they run
 *   mosmon --once [--json] one snapshot */
#include "control.h"
#include "mos/log.h"
#include "mos/status.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int fetch(const char *path, const char *op, struct json_object **resp)
{
    struct json_object *req = json_object_new_object();
    int rc;

    json_object_object_add(req, "op", json_object_new_string(op));
    rc = mos_control_call(path, req, resp);
    json_object_put(req);
    return rc;
}

static void print_table(struct json_object *resp)
{
    struct json_object *nodes = json_object_object_get(resp, "nodes");

    printf("cluster seen from %s\n", mos_json_str(resp, "node", "?"));
    printf("%-12s %-15s %-8s %6s %5s %7s %6s %5s %10s %6s %8s\n", "NODE", "ADDRESS", "STATE",
           "CPUS", "SPEED", "LOAD", "UTIL", "GUEST", "FREE_MIB", "FLAGS", "AGE");
    for (size_t i = 0; i < json_object_array_length(nodes); i++) {
        struct json_object *n = json_object_array_get_idx(nodes, i);
        struct json_object *age = json_object_object_get(n, "age_ms");
        char age_text[32];
        if (json_object_get_boolean(json_object_object_get(n, "self")))
            snprintf(age_text, sizeof(age_text), "self");
        else if (!age)
            snprintf(age_text, sizeof(age_text), "never");
        else
            snprintf(age_text, sizeof(age_text), "%.1fs", json_object_get_int64(age) / 1000.0);
        printf("%-12s %-15s %-8s %6lld %5lld %7.2f %5.0f%% %5lld %10lld %6s %8s\n",
               mos_json_str(n, "name", "?"), mos_json_str(n, "addr", "?"),
               mos_json_str(n, "state", "?"), mos_json_int(n, "ncpus", 0),
               mos_json_int(n, "speed", 0),
               json_object_get_double(json_object_object_get(n, "load")),
               100 * json_object_get_double(json_object_object_get(n, "util")),
               mos_json_int(n, "guests", 0), mos_json_int(n, "mem_free_mib", 0),
               json_object_get_boolean(json_object_object_get(n, "blocked")) ? "block" : "-",
               age_text);
    }
}

#define BAR_WIDTH 30

/* A bar of BAR_WIDTH cells for a fraction; past 1 it is full and ends in '>'. */
static void bar(double fraction)
{
    int cells = fraction <= 0 ? 0 : (int)(fraction * BAR_WIDTH + 0.5);

    putchar('[');
    for (int i = 0; i < BAR_WIDTH; i++)
        putchar(i < cells ? '#' : '.');
    putchar(cells > BAR_WIDTH ? '>' : ']');
}

/* Load per CPU (a full bar is one runnable process per CPU) and memory in use. */
static void print_bars(struct json_object *resp)
{
    struct json_object *nodes = json_object_object_get(resp, "nodes");

    printf("\n%-12s %-33s %5s   %-32s %4s\n", "", "load per CPU", "", "memory in use", "");
    for (size_t i = 0; i < json_object_array_length(nodes); i++) {
        struct json_object *n = json_object_array_get_idx(nodes, i);
        double load = json_object_get_double(json_object_object_get(n, "load"));
        long long total = mos_json_int(n, "mem_total_mib", 0);
        double used = total > 0 ? 1.0 - (double)mos_json_int(n, "mem_free_mib", 0) / total : 0;
        printf("%-12s ", mos_json_str(n, "name", "?"));
        if (strcmp(mos_json_str(n, "state", ""), "alive") != 0) {
            printf("(%s)\n", mos_json_str(n, "state", "?"));
            continue;
        }
        bar(load);
        printf(" %5.2f   ", load);
        bar(used);
        printf(" %3.0f%%\n", 100 * used);
    }
}

/* This node's jobs and where each runs now; guests with their home. */
static void print_jobs(struct json_object *list)
{
    struct json_object *jobs = json_object_object_get(list, "jobs");
    const char *self = mos_json_str(list, "node", "?");
    size_t n = jobs ? json_object_array_length(jobs) : 0;

    printf("\njobs on %s: %zu\n", self, n);
    for (size_t i = 0; i < n; i++) {
        struct json_object *j = json_object_array_get_idx(jobs, i);
        const char *from = mos_json_str(j, "from", "?"), *where = mos_json_str(j, "where", "?");
        char place[96];
        if (strcmp(from, self) != 0)
            snprintf(place, sizeof(place), "guest from %s", from);
        else if (strcmp(where, self) != 0)
            snprintf(place, sizeof(place), "-> %s", where);
        else
            snprintf(place, sizeof(place), "here");
        printf("  %7lld %-10s %-28s %.40s\n", mos_json_int(j, "home_pid", 0),
               mos_json_str(j, "user", "?"), place, mos_json_str(j, "cmd", "?"));
    }
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    int once = 0, json = 0, self;
    struct mos_config cfg;
    char path[108];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0)
            once = 1;
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else {
            fprintf(stderr, "mosmon: unknown argument '%s' (usage: mosmon [--once] [--json] "
                            "[--config FILE])\n", argv[i]);
            return 2;
        }
    }
    if (json && !once) {
        fprintf(stderr, "mosmon: --json goes with --once\n");
        return 2;
    }
    if (mos_runtime_config(config, &cfg, &self) != 0)
        return 1;
    int rc = mos_control_socket_path(&cfg, self, path, sizeof(path));
    mos_config_free(&cfg);
    for (;;) {
        struct json_object *resp = NULL, *list = NULL;
        rc = rc ? rc : fetch(path, "nodes", &resp);
        rc = rc || json ? rc : fetch(path, "list", &list);
        if (rc != 0) {
            fprintf(stderr, "mosmon: cannot ask mosd at %s: %s\n", path, mos_strerror(rc));
            json_object_put(resp);
            return 1;
        }
        if (!once)
            printf("\033[H\033[2J"); /* home and clear: a live view */
        if (json)
            printf("%s\n", json_object_to_json_string_ext(json_object_object_get(resp, "nodes"),
                                                          JSON_C_TO_STRING_PLAIN));
        else {
            print_table(resp);
            print_bars(resp);
            print_jobs(list);
        }
        fflush(stdout);
        json_object_put(resp);
        json_object_put(list);
        if (once)
            return 0;
        sleep(1);
    }
}
