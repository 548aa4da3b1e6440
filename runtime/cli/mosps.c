/* mosps: the jobs this node knows, where they run and why some must stay. */
#include "control.h"
#include "mos/log.h"
#include "mos/status.h"

#include <stdio.h>
#include <string.h>

static void print_table(struct json_object *jobs)
{
    printf("%7s %-10s %-10s %-10s %8s %-20s %s\n", "PID", "USER", "WHERE", "FROM", "AGE", "STAY",
           "CMD");
    for (size_t i = 0; i < json_object_array_length(jobs); i++) {
        struct json_object *j = json_object_array_get_idx(jobs, i);
        const char *stay = mos_json_str(j, "stay", "");
        const char *to = mos_json_str(j, "moving_to", "");
        char where[80], moving[48];
        /* a move under way: "node1>node2", "moving (live)" */
        snprintf(where, sizeof(where), "%s%s%s", mos_json_str(j, "where", "?"), *to ? ">" : "",
                 to);
        snprintf(moving, sizeof(moving), "moving%s",
                 json_object_get_boolean(json_object_object_get(j, "live")) ? " (live)" : "");
        printf("%7lld %-10s %-10s %-10s %7.0fs %-20s %s\n", mos_json_int(j, "home_pid", 0),
               mos_json_str(j, "user", "?"), where, mos_json_str(j, "from", "?"),
               json_object_get_double(json_object_object_get(j, "age_s")),
               *stay ? stay : *to ? moving
                            : (json_object_get_boolean(json_object_object_get(j, "locked"))
                                   ? "locked (-L)"
                                   : "-"),
               mos_json_str(j, "cmd", "?"));
    }
}

int main(int argc, char **argv)
{
    struct json_object *req, *resp;
    const char *config = NULL;
    int json = 0, rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else {
            fprintf(stderr, "mosps: unknown argument '%s' (usage: mosps [--json] [--config FILE])\n",
                    argv[i]);
            return 2;
        }
    }
    req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("list"));
    rc = mos_control_ask("mosps", config, req, &resp);
    json_object_put(req);
    if (rc != 0)
        return 1;
    if (json)
        printf("%s\n", json_object_to_json_string_ext(json_object_object_get(resp, "jobs"),
                                                      JSON_C_TO_STRING_PLAIN));
    else
        print_table(json_object_object_get(resp, "jobs"));
    json_object_put(resp);
    return 0;
}
