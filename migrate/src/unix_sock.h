/* Unix sockets (private): what the kernel tells of one, and what its queue holds. */
#ifndef MOS_MIGRATE_UNIX_SOCK_H
#define MOS_MIGRATE_UNIX_SOCK_H

#include <stddef.h>
#include <stdint.h>

struct mos_unix_sock {
    uint32_t ino, peer; /* peer 0: none */
    uint8_t type, state, shutdown, named;
};

/* The unix socket with inode ino, as sock_diag shows it in our network namespace. 0, -ENOENT
 * when there is none there (another kind of socket, another namespace, or one released:
 * the other end of a pair after its last close), or -errno. */
int mos_unix_sock_find(uint32_t ino, struct mos_unix_sock *out);

/* The receive queue of sock (a socket of ours: pidfd_getfd), read without taking it, as
 * struct mos_rec_unix's messages (uint32 length and bytes each; a stream's as one) into
 * *out (malloc'ed, *len bytes, *nmsgs messages). At most budget bytes of data. 0,
 * MOS_E_NOT_MIGRATABLE with why (file descriptors in flight, too much queued), or -errno. */
int mos_unix_queue_read(int sock, uint32_t type, uint32_t budget, uint8_t **out, uint32_t *len,
                        uint32_t *nmsgs, char *why, size_t whylen);

#endif
