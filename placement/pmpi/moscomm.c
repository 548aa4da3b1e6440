/* libmoscomm.so: a PMPI profiling library that records which MPI ranks send how many bytes to
 * which, and at MPI_Finalize writes the matrix to $MOS_COMM_MATRIX in the format mosplace reads
 * (mos/placement_map.h). Use it without relinking:
 *
 *     mpirun -x LD_PRELOAD=/path/libmoscomm.so -x MOS_COMM_MATRIX=comm.txt ./prog
 *
 * Calls covered (C bindings; ranks translated to MPI_COMM_WORLD, inter-communicators through
 * their remote group):
 *   point to point: MPI_Send, Bsend, Ssend, Rsend, Isend, Ibsend, Issend, Irsend, Sendrecv,
 *                   Sendrecv_replace (bytes counted at the sender, when the send is posted)
 *   collectives, by their obvious pattern (what an algorithm moves at least, not the tree or
 *   ring the MPI library really uses):
 *     Bcast         root -> every other rank, the buffer
 *     Reduce        every other rank -> root, the buffer
 *     Allreduce     as Reduce to rank 0 then Bcast from rank 0
 *     Gather(v)     every other rank -> root, its send buffer
 *     Scatter(v)    root -> every other rank, that rank's part
 *     Allgather     every rank -> every other rank, its send buffer
 *     Alltoall(v)   every rank -> every other rank, the part for it
 * Not covered: one-sided (MPI_Put/Get), persistent requests, neighbourhood and non-blocking
 * collectives, the Fortran bindings, MPI-IO. Counters are atomic, so MPI_THREAD_MULTIPLE
 * programs are counted correctly. */
#include "mos/placement_map.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t *row;       /* bytes this process sent to each world rank */
static int world_size, world_rank;
static MPI_Group world_group = MPI_GROUP_NULL;

static void row_add(int world_dst, uint64_t bytes)
{
    if (row && world_dst >= 0 && world_dst < world_size && world_dst != world_rank)
        __atomic_fetch_add(&row[world_dst], bytes, __ATOMIC_RELAXED);
}

static uint64_t type_bytes(MPI_Datatype type, int count)
{
    int size = 0;

    if (count <= 0 || type == MPI_DATATYPE_NULL || PMPI_Type_size(type, &size) != MPI_SUCCESS)
        return 0;
    return (uint64_t)count * (uint64_t)size;
}

/* World rank of `rank` in comm (the remote group of an inter-communicator). */
static int to_world(MPI_Comm comm, int rank)
{
    MPI_Group group;
    int inter = 0, world = MPI_UNDEFINED;

    if (rank < 0)
        return -1; /* MPI_PROC_NULL and friends */
    if (comm == MPI_COMM_WORLD)
        return rank;
    PMPI_Comm_test_inter(comm, &inter);
    if ((inter ? PMPI_Comm_remote_group(comm, &group) : PMPI_Comm_group(comm, &group)) !=
        MPI_SUCCESS)
        return -1;
    PMPI_Group_translate_ranks(group, 1, &rank, world_group, &world);
    PMPI_Group_free(&group);
    return world == MPI_UNDEFINED ? -1 : world;
}

static void count_send(MPI_Comm comm, int dst, MPI_Datatype type, int count)
{
    row_add(to_world(comm, dst), type_bytes(type, count));
}

static int comm_size(MPI_Comm comm)
{
    int n = 0;

    PMPI_Comm_size(comm, &n);
    return n;
}

static int comm_rank(MPI_Comm comm)
{
    int r = -1;

    PMPI_Comm_rank(comm, &r);
    return r;
}

static void counters_init(void)
{
    PMPI_Comm_size(MPI_COMM_WORLD, &world_size);
    PMPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    PMPI_Comm_group(MPI_COMM_WORLD, &world_group);
    row = calloc((size_t)world_size, sizeof(*row));
}

int MPI_Init(int *argc, char ***argv)
{
    int rc = PMPI_Init(argc, argv);

    if (rc == MPI_SUCCESS)
        counters_init();
    return rc;
}

int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)
{
    int rc = PMPI_Init_thread(argc, argv, required, provided);

    if (rc == MPI_SUCCESS)
        counters_init();
    return rc;
}

/* Rank 0 gathers every row and writes the file (through a temporary name, then rename, so a
 * reader never sees half a matrix). */
static void matrix_write(const uint64_t *all)
{
    const char *path = getenv("MOS_COMM_MATRIX");
    struct mos_comm_matrix m = {.n = (unsigned)world_size, .bytes = (uint64_t *)all};
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "moscomm: cannot write %s: %m\n", tmp);
        return;
    }
    fprintf(f, "# recorded by libmoscomm.so: bytes sent between MPI_COMM_WORLD ranks\n");
    if (mos_comm_matrix_write(&m, f) != 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "moscomm: cannot write %s: %m\n", path);
        unlink(tmp);
    }
}

int MPI_Finalize(void)
{
    const char *path = getenv("MOS_COMM_MATRIX");
    uint64_t *all = NULL;

    if (path && *path && row) {
        if (world_size > MOS_COMM_MAX_RANKS) {
            if (world_rank == 0)
                fprintf(stderr, "moscomm: %d ranks, more than the %d a matrix holds; not "
                                "written\n", world_size, MOS_COMM_MAX_RANKS);
        } else {
            if (world_rank == 0)
                all = malloc((size_t)world_size * (size_t)world_size * sizeof(*all));
            PMPI_Gather(row, world_size, MPI_UINT64_T, all, world_size, MPI_UINT64_T, 0,
                        MPI_COMM_WORLD);
            if (world_rank == 0 && all)
                matrix_write(all);
            free(all);
        }
    }
    free(row);
    row = NULL;
    if (world_group != MPI_GROUP_NULL)
        PMPI_Group_free(&world_group);
    return PMPI_Finalize();
}

/* ---- point to point ---------------------------------------------------------------------- */

#define WRAP_SEND(NAME)                                                                        \
    int MPI_##NAME(const void *buf, int count, MPI_Datatype type, int dst, int tag,            \
                   MPI_Comm comm)                                                              \
    {                                                                                          \
        count_send(comm, dst, type, count);                                                    \
        return PMPI_##NAME(buf, count, type, dst, tag, comm);                                  \
    }
#define WRAP_ISEND(NAME)                                                                       \
    int MPI_##NAME(const void *buf, int count, MPI_Datatype type, int dst, int tag,            \
                   MPI_Comm comm, MPI_Request *req)                                            \
    {                                                                                          \
        count_send(comm, dst, type, count);                                                    \
        return PMPI_##NAME(buf, count, type, dst, tag, comm, req);                             \
    }

WRAP_SEND(Send)
WRAP_SEND(Bsend)
WRAP_SEND(Ssend)
WRAP_SEND(Rsend)
WRAP_ISEND(Isend)
WRAP_ISEND(Ibsend)
WRAP_ISEND(Issend)
WRAP_ISEND(Irsend)

int MPI_Sendrecv(const void *sbuf, int scount, MPI_Datatype stype, int dst, int stag, void *rbuf,
                 int rcount, MPI_Datatype rtype, int src, int rtag, MPI_Comm comm,
                 MPI_Status *status)
{
    count_send(comm, dst, stype, scount);
    return PMPI_Sendrecv(sbuf, scount, stype, dst, stag, rbuf, rcount, rtype, src, rtag, comm,
                         status);
}

int MPI_Sendrecv_replace(void *buf, int count, MPI_Datatype type, int dst, int stag, int src,
                         int rtag, MPI_Comm comm, MPI_Status *status)
{
    count_send(comm, dst, type, count);
    return PMPI_Sendrecv_replace(buf, count, type, dst, stag, src, rtag, comm, status);
}

/* ---- collectives ------------------------------------------------------------------------- */

static void to_all_others(MPI_Comm comm, uint64_t bytes)
{
    int n = comm_size(comm), me = comm_rank(comm);

    for (int j = 0; j < n; j++)
        if (j != me)
            row_add(to_world(comm, j), bytes);
}

int MPI_Bcast(void *buf, int count, MPI_Datatype type, int root, MPI_Comm comm)
{
    if (comm_rank(comm) == root)
        to_all_others(comm, type_bytes(type, count));
    return PMPI_Bcast(buf, count, type, root, comm);
}

int MPI_Reduce(const void *sbuf, void *rbuf, int count, MPI_Datatype type, MPI_Op op, int root,
               MPI_Comm comm)
{
    if (comm_rank(comm) != root)
        count_send(comm, root, type, count);
    return PMPI_Reduce(sbuf, rbuf, count, type, op, root, comm);
}

int MPI_Allreduce(const void *sbuf, void *rbuf, int count, MPI_Datatype type, MPI_Op op,
                  MPI_Comm comm)
{
    if (comm_rank(comm) != 0)
        count_send(comm, 0, type, count);
    else
        to_all_others(comm, type_bytes(type, count));
    return PMPI_Allreduce(sbuf, rbuf, count, type, op, comm);
}

int MPI_Gather(const void *sbuf, int scount, MPI_Datatype stype, void *rbuf, int rcount,
               MPI_Datatype rtype, int root, MPI_Comm comm)
{
    if (comm_rank(comm) != root)
        count_send(comm, root, stype, scount);
    return PMPI_Gather(sbuf, scount, stype, rbuf, rcount, rtype, root, comm);
}

int MPI_Gatherv(const void *sbuf, int scount, MPI_Datatype stype, void *rbuf,
                const int rcounts[], const int displs[], MPI_Datatype rtype, int root,
                MPI_Comm comm)
{
    if (comm_rank(comm) != root)
        count_send(comm, root, stype, scount);
    return PMPI_Gatherv(sbuf, scount, stype, rbuf, rcounts, displs, rtype, root, comm);
}

int MPI_Scatter(const void *sbuf, int scount, MPI_Datatype stype, void *rbuf, int rcount,
                MPI_Datatype rtype, int root, MPI_Comm comm)
{
    if (comm_rank(comm) == root)
        to_all_others(comm, type_bytes(stype, scount));
    return PMPI_Scatter(sbuf, scount, stype, rbuf, rcount, rtype, root, comm);
}

int MPI_Scatterv(const void *sbuf, const int scounts[], const int displs[], MPI_Datatype stype,
                 void *rbuf, int rcount, MPI_Datatype rtype, int root, MPI_Comm comm)
{
    if (comm_rank(comm) == root) {
        int n = comm_size(comm);
        for (int j = 0; j < n; j++)
            if (j != root)
                count_send(comm, j, stype, scounts[j]);
    }
    return PMPI_Scatterv(sbuf, scounts, displs, stype, rbuf, rcount, rtype, root, comm);
}

int MPI_Allgather(const void *sbuf, int scount, MPI_Datatype stype, void *rbuf, int rcount,
                  MPI_Datatype rtype, MPI_Comm comm)
{
    /* With MPI_IN_PLACE the contribution is already in rbuf, rcount elements of rtype. */
    to_all_others(comm, sbuf == MPI_IN_PLACE ? type_bytes(rtype, rcount)
                                             : type_bytes(stype, scount));
    return PMPI_Allgather(sbuf, scount, stype, rbuf, rcount, rtype, comm);
}

int MPI_Alltoall(const void *sbuf, int scount, MPI_Datatype stype, void *rbuf, int rcount,
                 MPI_Datatype rtype, MPI_Comm comm)
{
    to_all_others(comm, sbuf == MPI_IN_PLACE ? type_bytes(rtype, rcount)
                                             : type_bytes(stype, scount));
    return PMPI_Alltoall(sbuf, scount, stype, rbuf, rcount, rtype, comm);
}

int MPI_Alltoallv(const void *sbuf, const int scounts[], const int sdispls[], MPI_Datatype stype,
                  void *rbuf, const int rcounts[], const int rdispls[], MPI_Datatype rtype,
                  MPI_Comm comm)
{
    int n = comm_size(comm), me = comm_rank(comm);
    const int *counts = sbuf == MPI_IN_PLACE ? rcounts : scounts;
    MPI_Datatype type = sbuf == MPI_IN_PLACE ? rtype : stype;

    for (int j = 0; j < n; j++)
        if (j != me)
            count_send(comm, j, type, counts[j]);
    return PMPI_Alltoallv(sbuf, scounts, sdispls, stype, rbuf, rcounts, rdispls, rtype, comm);
}
