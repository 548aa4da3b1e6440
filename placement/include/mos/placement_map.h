/* MPI rank mapping: a communication matrix (bytes between ranks), a list of hosts with slots,
 * and a mapping of ranks to hosts and slots that keeps traffic inside hosts under load balance,
 * written as an OpenMPI rankfile.
 *
 * Matrix file (what libmoscomm.so writes and `mosplace rankfile --matrix` reads):
 *
 *     # comments from '#' to the end of a line; blank lines are ignored
 *     mos-comm-matrix 1          <- magic and format version, the first non-comment line
 *     ranks 4                    <- number of ranks N, 1 <= N <= MOS_COMM_MAX_RANKS
 *     0 1 1048576                <- SRC DST BYTES: SRC sent BYTES to DST (decimal, < 2^63)
 *     1 0 1048576                   a pair may repeat (summed); SRC == DST is allowed and
 *     ...                           ignored by the mapping
 *
 * Hosts file (the subset of an OpenMPI hostfile that matters here, plus a speed):
 *
 *     # host [slots=N] [speed=X] [cores=LIST]
 *     node1 slots=16             <- slots default 1 (1..4096); speed default 1.0 (0 < X <= 1000)
 *     node2 slots=16 speed=1.5
 *     node3 cores=2-7,1          <- the cores (rankfile slot numbers) to use, in this order;
 *                                   slots defaults to their number and may not exceed it
 *
 * Host names are 1-255 characters of [A-Za-z0-9._-]; each host once. */
#ifndef MOS_PLACEMENT_MAP_H
#define MOS_PLACEMENT_MAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MOS_COMM_MATRIX_MAGIC "mos-comm-matrix"
#define MOS_COMM_MATRIX_VERSION 1
#define MOS_COMM_MAX_RANKS 4096 /* dense n x n counters: 128 MiB at the limit */
#define MOS_HOSTS_MAX 65536
#define MOS_HOST_MAX_SLOTS 4096

struct mos_comm_matrix {
    unsigned n;
    uint64_t *bytes; /* n x n, row-major: bytes[src * n + dst] */
};

/* Zeroed n x n matrix. 0, -EINVAL (n out of range), -ENOMEM. */
int mos_comm_matrix_init(struct mos_comm_matrix *m, unsigned n);
void mos_comm_matrix_free(struct mos_comm_matrix *m);
/* Bytes between ranks a and b in both directions (saturating). */
uint64_t mos_comm_matrix_pair(const struct mos_comm_matrix *m, unsigned a, unsigned b);

/* Parse the text of a matrix file. `name` is used in the error text. On error returns
 * MOS_E_CONFIG (or -ENOMEM) and writes one line "NAME:LINE: what" to err; *out untouched. */
int mos_comm_matrix_parse(const char *text, size_t len, const char *name,
                          struct mos_comm_matrix *out, char *err, size_t err_len);
/* Write in the format above (only non-zero entries). 0 or -EIO. */
int mos_comm_matrix_write(const struct mos_comm_matrix *m, FILE *out);

struct mos_host {
    char name[256];
    unsigned slots;
    double speed;
    unsigned *cores; /* NULL: slot i is core i; else slot i is cores[i] (owned by the list) */
};
struct mos_host_list {
    struct mos_host *hosts;
    size_t n;
};
int mos_host_list_parse(const char *text, size_t len, const char *name,
                        struct mos_host_list *out, char *err, size_t err_len);
void mos_host_list_free(struct mos_host_list *h);

/* Read a whole file and run the parser; errors (including the file's own) are logged once as
 * "PATH:LINE: what" or "PATH: strerror". 0 or the parser's status / -errno. */
int mos_comm_matrix_load(const char *path, struct mos_comm_matrix *out);
int mos_host_list_load(const char *path, struct mos_host_list *out);

enum mos_map_policy {
    MOS_MAP_IPC = 0, /* opportunity cost with links as resources, then swap refinement */
    MOS_MAP_BYSLOT,  /* OpenMPI's default: fill each host's slots in rank order */
    MOS_MAP_BYNODE,  /* round-robin over hosts */
};

struct mos_rank_map {
    unsigned n;
    unsigned *host; /* index into the host list, per rank */
    unsigned *slot; /* slot (core) on that host, per rank */
};
void mos_rank_map_free(struct mos_rank_map *map);

/* Map m->n ranks to hosts, at most `slots` ranks per host and one rank per slot. 0,
 * MOS_E_LIMIT (more ranks than slots, logged), -ENOMEM. */
int mos_rank_map_compute(const struct mos_comm_matrix *m, const struct mos_host_list *hosts,
                         enum mos_map_policy policy, struct mos_rank_map *out);

/* Bytes that cross hosts under a mapping (each direction counted). */
uint64_t mos_rank_map_internode_bytes(const struct mos_comm_matrix *m,
                                      const struct mos_rank_map *map);

/* The exact minimum of inter-node bytes over all mappings that respect the slots (branch and
 * bound), for small instances: n <= 20 ranks. 0 and *out, -E2BIG for larger ones. */
int mos_rank_map_optimum(const struct mos_comm_matrix *m, const struct mos_host_list *hosts,
                         struct mos_rank_map *out);

/* Write an OpenMPI rankfile: "rank R=HOST slot=C" per rank, C the core of the rank's slot
 * (the host's cores= list, else the slot number). 0 or -EIO. */
int mos_rankfile_write(const struct mos_rank_map *map, const struct mos_host_list *hosts,
                       FILE *out);

#endif
