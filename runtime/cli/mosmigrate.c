/* mosmigrate PID NODE: ask this node's mosd to move a job. Who can kill a process can move it. */
#include "control.h"
#include "mos/log.h"
#include "mos/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The checkpoint is written by the job's mosrun, in its own cwd: pass an absolute path. */
static const char *realpath_or_self(const char *path, char *buf, size_t len)
{
    char cwd[2048];

    if (path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
        return path;
    snprintf(buf, len, "%s/%s", cwd, path);
    return buf;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: mosmigrate [--config FILE] [--live[=pre]] PID NODE|home|checkpoint [FILE]\n"
                 "  --live: a job at home moves live: its memory is sent while it runs, then it\n"
                 "          stops only for what it wrote meanwhile (Linux 6.7 or later)\n");
}

int main(int argc, char **argv)
{
    const char *config = NULL, *pid_text = NULL, *to = NULL, *file = NULL;
    struct json_object *req, *resp = NULL;
    char *end;
    int rc, live = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strcmp(argv[i], "--live") == 0 || strcmp(argv[i], "--live=pre") == 0)
            live = 1;
        else if (strncmp(argv[i], "--live=", 7) == 0) {
            fprintf(stderr, "mosmigrate: %s: %s\n", argv[i],
                    strcmp(argv[i] + 7, "post") ? "expected --live or --live=pre"
                                                : "post-copy is not implemented");
            return 2;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (!pid_text)
            pid_text = argv[i];
        else if (!to)
            to = argv[i];
        else if (!file && strcmp(to, "checkpoint") == 0)
            file = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    long pid = pid_text ? strtol(pid_text, &end, 10) : 0;
    if (!to || *end || pid <= 0) {
        fprintf(stderr, "mosmigrate: need a process id and a node (mosmigrate --help)\n");
        return 2;
    }
    req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("migrate"));
    json_object_object_add(req, "pid", json_object_new_int((int)pid));
    json_object_object_add(req, "to", json_object_new_string(to));
    if (live)
        json_object_object_add(req, "live", json_object_new_boolean(1));
    char abs[4096];
    if (file)
        json_object_object_add(req, "file", json_object_new_string(
                                                realpath_or_self(file, abs, sizeof(abs))));
    rc = mos_control_ask("mosmigrate", config, req, &resp);
    json_object_put(req);
    if (rc == 0 && strcmp(to, "checkpoint") == 0)
        printf("pid %ld: %s\n", pid, mos_json_str(resp, "where", "checkpoint written"));
    else if (rc == 0)
        printf("pid %ld now runs on %s\n", pid, mos_json_str(resp, "where", to));
    json_object_put(resp);
    return rc == 0 ? 0 : 1;
}
