/* mosmon: the cluster as this node's gossip sees it, refreshed every second.
 *   mosmon                 live view until Ctrl-C
 *   mosmon --once [--json] one snapshot */
#include "control.h"
#include "mos/log.h"
#include "mos/status.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int fetch(const char *path, struct json_object **resp)
{
    struct json_object *req = json_object_new_object();
    int rc;

    json_object_object_add(req, "op", json_object_new_string("nodes"));
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
        struct json_object *resp = NULL;
        rc = rc ? rc : fetch(path, &resp);
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
        else
            print_table(resp);
        fflush(stdout);
        json_object_put(resp);
        if (once)
            return 0;
        sleep(1);
    }
}
