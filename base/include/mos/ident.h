/* Who a process may be made as on this node.
 *
 * A request from another node (exec, guest) names a uid, a gid and supplementary groups. The
 * cluster key proves which node sent it, not that these belong together: the node that makes
 * the process checks them against its own user database, and the code that calls setgroups and
 * setgid checks them again. */
#ifndef MOS_IDENT_H
#define MOS_IDENT_H

#include <stddef.h>
#include <sys/types.h>

/* 0 when uid is a user of this node's user database (getpwuid) and gid and each of groups[n]
 * is one of that user's groups (getgrouplist: its primary group and every group listing it).
 * Fewer groups than the user has are accepted (they give less). Else MOS_E_IDENTITY with one
 * line in why[len] naming the uid and the first group that is not the user's. */
int mos_ident_check(uid_t uid, gid_t gid, const gid_t *groups, size_t n, char *why, size_t len);

#endif
