/* An MPI program for the rankfile test: a known communication pattern (so the recorded matrix
 * can be checked byte for byte) and a report of where each rank runs.
 *   rank r sends (r+1)*1000 bytes to rank (r+1) mod n (MPI_Isend / MPI_Recv),
 *   rank 0 broadcasts 512 doubles (4096 bytes),
 *   MPI_Alltoall of 8 bytes to every rank,
 *   in MPI_COMM_WORLD split by rank parity, sub-rank 0 sends 100 bytes to sub-rank 1 (so the
 *   profiler must translate sub-communicator ranks to world ranks),
 * then each rank prints "rank R host H cpus LIST" with its CPU affinity. */
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void cpu_list(char *out, size_t len)
{
    cpu_set_t set;
    size_t k = 0;

    out[0] = '\0';
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return;
    for (int c = 0; c < CPU_SETSIZE && k + 8 < len; c++)
        if (CPU_ISSET(c, &set))
            k += (size_t)snprintf(out + k, len - k, "%s%d", k ? "," : "", c);
}

int main(int argc, char **argv)
{
    int rank, size;
    char host[256], cpus[512], *sendbuf, *recvbuf;
    double bcast[512];
    MPI_Request req;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    sendbuf = calloc((size_t)(rank + 1) * 1000, 1);
    recvbuf = calloc((size_t)size * 1000, 1);
    int to = (rank + 1) % size, from = (rank + size - 1) % size;
    if (size > 1) {
        MPI_Isend(sendbuf, (rank + 1) * 1000, MPI_BYTE, to, 7, MPI_COMM_WORLD, &req);
        MPI_Recv(recvbuf, size * 1000, MPI_BYTE, from, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
    }
    for (int i = 0; i < 512; i++)
        bcast[i] = rank == 0 ? i : 0;
    MPI_Bcast(bcast, 512, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (bcast[511] != 511)
        fprintf(stderr, "rank %d: broadcast lost\n", rank);
    char *a2a_out = calloc((size_t)size, 8), *a2a_in = calloc((size_t)size, 8);
    MPI_Alltoall(a2a_out, 8, MPI_BYTE, a2a_in, 8, MPI_BYTE, MPI_COMM_WORLD);
    free(a2a_out);
    free(a2a_in);
    MPI_Comm half;
    int sub_rank, sub_size;
    char small[100] = {0};
    MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &half);
    MPI_Comm_rank(half, &sub_rank);
    MPI_Comm_size(half, &sub_size);
    if (sub_size >= 2 && sub_rank == 0)
        MPI_Send(small, 100, MPI_BYTE, 1, 9, half);
    else if (sub_size >= 2 && sub_rank == 1)
        MPI_Recv(small, 100, MPI_BYTE, 0, 9, half, MPI_STATUS_IGNORE);
    MPI_Comm_free(&half);
    gethostname(host, sizeof(host));
    cpu_list(cpus, sizeof(cpus));
    printf("rank %d host %s cpus %s\n", rank, host, cpus);
    fflush(stdout);
    free(sendbuf);
    free(recvbuf);
    MPI_Finalize();
    return bcast[511] == 511 ? 0 : 1;
}
