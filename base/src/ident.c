/* The identity check of mos/ident.h: the target's own user database decides, never the
 * request. */
#include "mos/ident.h"

#include "mos/status.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The user's groups; *list is malloc'ed. 0, -ENOENT for an unknown uid, or -errno. */
static int user_groups(uid_t uid, gid_t **list, int *n)
{
    struct passwd pw, *found = NULL;
    long size = sysconf(_SC_GETPW_R_SIZE_MAX);
    char *buf = malloc(size > 0 ? (size_t)size : 16384);
    int rc;

    if (!buf)
        return -ENOMEM;
    rc = getpwuid_r(uid, &pw, buf, size > 0 ? (size_t)size : 16384, &found);
    if (rc != 0 || !found) {
        free(buf);
        return rc ? -rc : -ENOENT;
    }
    *n = 32;
    for (;;) {
        int want = *n;
        *list = malloc((size_t)want * sizeof(gid_t));
        if (!*list) {
            free(buf);
            return -ENOMEM;
        }
        if (getgrouplist(pw.pw_name, pw.pw_gid, *list, n) >= 0)
            break;
        free(*list);
        *list = NULL;
        if (*n <= want) /* glibc sets the size it needs; no growth means it cannot tell */
            *n = 2 * want;
    }
    free(buf);
    return 0;
}

static int in_list(gid_t g, const gid_t *list, int n)
{
    for (int i = 0; i < n; i++)
        if (list[i] == g)
            return 1;
    return 0;
}

int mos_ident_check(uid_t uid, gid_t gid, const gid_t *groups, size_t n, char *why, size_t len)
{
    gid_t *mine = NULL;
    int n_mine = 0, rc = user_groups(uid, &mine, &n_mine);

    if (rc != 0) {
        snprintf(why, len, "uid %u is not a user here (%s)", (unsigned)uid,
                 rc == -ENOENT ? "no such user" : mos_strerror(rc));
        return MOS_E_IDENTITY;
    }
    rc = 0;
    if (!in_list(gid, mine, n_mine)) {
        snprintf(why, len, "gid %u is not a group of uid %u here", (unsigned)gid, (unsigned)uid);
        rc = MOS_E_IDENTITY;
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!in_list(groups[i], mine, n_mine)) {
            snprintf(why, len, "group %u is not a group of uid %u here", (unsigned)groups[i],
                     (unsigned)uid);
            rc = MOS_E_IDENTITY;
        }
    free(mine);
    return rc;
}
