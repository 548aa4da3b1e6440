/* mosbench mpi's two ranks (mosbench-mpi-pingpong): a ping-pong of 8 bytes for latency and
 * one of 1 MiB for bandwidth between ranks 0 and 1, with every message checked, so that a
 * rank moved away (its sockets kept at home by the deputy) is measured doing correct work.
 *
 *   mosbench-mpi-pingpong [--gate FILE] [--lat-iters N] [--bw-iters N]
 *
 * Each rank first prints "rank R pid P". With --gate, the ranks wait (in barriers 20 ms apart)
 * until FILE exists, so that the bench can move a rank before anything is timed. Rank 0 then
 * prints "lat_us=X bw_gbps=Y checked=BYTES": half the round trip of an 8-byte message, and
 * the bytes sent both ways over the 1 MiB round trips' time. A message that differs from
 * what was sent ends the job with status 3 and one line on stderr. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BW_BYTES (1 << 20)
#define LAT_BYTES 8

/* Message i's contents: every byte depends on its place and on i, so a stale or shifted
 * message is told from the right one. */
static void fill(uint8_t *buf, size_t len, unsigned i)
{
    for (size_t k = 0; k < len; k++)
        buf[k] = (uint8_t)(k * 131 + i * 7 + (k >> 8));
}

static void check(const uint8_t *buf, size_t len, unsigned i, int rank)
{
    for (size_t k = 0; k < len; k++) {
        if (buf[k] != (uint8_t)(k * 131 + i * 7 + (k >> 8))) {
            fprintf(stderr, "mosbench-mpi-pingpong: rank %d: message %u differs at byte %zu\n",
                    rank, i, k);
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
    }
}

/* iters round trips of len bytes; every message checked by both ranks. The seconds taken. */
static double pingpong(int rank, uint8_t *buf, size_t len, unsigned iters, unsigned long long *checked)
{
    double t0;

    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (unsigned i = 0; i < iters; i++) {
        if (rank == 0) {
            fill(buf, len, i);
            MPI_Send(buf, (int)len, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(buf, (int)len, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, (int)len, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            check(buf, len, i, rank);
            MPI_Send(buf, (int)len, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
            continue;
        }
        if (rank == 0) {
            check(buf, len, i, rank);
            *checked += 2 * len;
        }
    }
    return MPI_Wtime() - t0;
}

static unsigned count_arg(const char *text)
{
    char *end;
    unsigned long v = strtoul(text, &end, 10);

    if (*text < '0' || *text > '9' || *end || v < 1 || v > 10000000) {
        fprintf(stderr, "mosbench-mpi-pingpong: '%s' is not a count from 1 to 10000000\n", text);
        exit(2);
    }
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    const char *gate = NULL;
    unsigned lat_iters = 2000, bw_iters = 100;
    unsigned long long checked = 0;
    int rank, size;

    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--gate") == 0)
            gate = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--lat-iters") == 0)
            lat_iters = count_arg(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--bw-iters") == 0)
            bw_iters = count_arg(argv[++i]);
        else {
            fprintf(stderr, "mosbench-mpi-pingpong: bad argument '%s'\n", argv[i]);
            return 2;
        }
    }
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) {
        if (rank == 0)
            fprintf(stderr, "mosbench-mpi-pingpong: needs 2 ranks, has %d\n", size);
        MPI_Finalize();
        return 2;
    }
    printf("rank %d pid %d\n", rank, (int)getpid());
    fflush(stdout);
    if (gate) {
        int open_gate = 0;
        while (!open_gate) { /* rank 0 looks, everyone learns: the ranks leave together */
            usleep(20000);
            open_gate = rank == 0 && access(gate, F_OK) == 0;
            MPI_Bcast(&open_gate, 1, MPI_INT, 0, MPI_COMM_WORLD);
        }
    }
    uint8_t *buf = malloc(BW_BYTES);
    if (!buf)
        MPI_Abort(MPI_COMM_WORLD, 1);
    double lat = pingpong(rank, buf, LAT_BYTES, lat_iters, &checked);
    double bw = pingpong(rank, buf, BW_BYTES, bw_iters, &checked);
    if (rank == 0) {
        printf("lat_us=%.2f bw_gbps=%.3f checked=%llu\n", lat / lat_iters / 2 * 1e6,
               2.0 * BW_BYTES * bw_iters * 8 / bw / 1e9, checked);
        fflush(stdout);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
