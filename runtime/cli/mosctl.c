/* mosctl: administer this node.
 *   mosctl status            the node's state: blocked or not, jobs, guests, load
 *   mosctl block | unblock   stop / resume accepting new guests
 *   mosctl expel             send every guest home (an orderly disconnect)
 *   mosctl bring             call this node's own jobs home
 *   mosctl setspeed N        the relative CPU speed this node announces (0: measured) */
#include "control.h"
#include "mos/log.h"
#include "mos/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: mosctl [--config FILE] status|block|unblock|expel|bring|setspeed N\n");
}

int main(int argc, char **argv)
{
    const char *config = NULL, *cmd = NULL, *arg = NULL;
    struct json_object *req, *resp = NULL;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (!cmd)
            cmd = argv[i];
        else if (!arg)
            arg = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    static const char *const known[] = {"status", "block", "unblock", "expel", "bring",
                                        "setspeed"};
    int ok = 0;
    for (size_t i = 0; cmd && i < sizeof(known) / sizeof(known[0]); i++)
        ok |= strcmp(cmd, known[i]) == 0;
    char *end = NULL;
    long speed = arg ? strtol(arg, &end, 10) : -1;
    if (!ok || (strcmp(cmd, "setspeed") == 0) != (arg != NULL) ||
        (arg && (*end || speed < 0 || speed > 1000000))) {
        fprintf(stderr, "mosctl: %s (mosctl --help)\n",
                !cmd ? "no command" : !ok ? "unknown command" : "setspeed takes one number");
        return 2;
    }
    req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("ctl"));
    json_object_object_add(req, "cmd", json_object_new_string(cmd));
    if (arg)
        json_object_object_add(req, "value", json_object_new_int((int)speed));
    rc = mos_control_ask("mosctl", config, req, &resp);
    json_object_put(req);
    if (rc == 0)
        printf("%s\n", mos_json_str(resp, "text", "done"));
    json_object_put(resp);
    return rc == 0 ? 0 : 1;
}
