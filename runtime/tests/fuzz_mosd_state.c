/* libFuzzer target: mosd's state file as a restarted mosd reads it back (mosd_state_parse).
 * The file is root's, but it is read as untrusted input all the same: it may be truncated by a
 * crash, corrupt, or written by another version. Whatever it holds, the parse must not crash,
 * and every record it accepts must be one mosd could act on safely: pids of real processes
 * (never 0, 1 or negative, which kill() and pidfd_open() read as groups or init), a user that
 * is not root, an own job of this node whose identity's parent is its mosrun, a guest that runs
 * here under a supervisor. */
#include "mosd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_record(const struct mosd_state_rec *r, const char *self)
{
    if (r->pid < 2 || r->home_pid < 1 || r->uid == 0 || (int)r->uid < 0 || (int)r->gid < 0 ||
        r->id < 0 || (r->locked != 0 && r->locked != 1) || !r->home[0] ||
        !r->where[0] || memchr(r->cmd, '\0', sizeof(r->cmd)) == NULL)
        abort();
    if (r->nodes && json_object_array_length(r->nodes) > MOSD_MAX_JOB_NODES)
        abort();
    if (!r->guest) {
        if (strcmp(r->home, self) != 0 || r->home_pid != r->pid || r->owner_pid < 2 ||
            r->ident.ppid != r->owner_pid || r->owner_fd_min < 0 || r->supervisor != 0)
            abort();
        return;
    }
    if (r->guest != 1 || strcmp(r->where, self) != 0 || r->supervisor < 2)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mosd_state_rec recs[64];
    struct json_object *root = NULL;
    char why[160];
    size_t n = 99;

    int rc = mosd_state_parse((const char *)data, size, "n1", recs, 64, &n, &root, why,
                              sizeof(why));
    if (rc != 0) {
        if (root || n != 0 || !why[0] || !memchr(why, '\0', sizeof(why)))
            abort(); /* refused whole, with a reason */
        return 0;
    }
    if (!root || n > 64)
        abort();
    for (size_t i = 0; i < n; i++)
        check_record(&recs[i], "n1");
    json_object_put(root);
    return 0;
}
