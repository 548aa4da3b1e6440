/* The benchmarks of mosbench: one function per subcommand, given the arguments after its name.
 * Each returns the process exit status (0 ok, 2 bad usage, 1 failure). */
#ifndef MOS_BENCH_H
#define MOS_BENCH_H

#include <stdint.h>

/* Parse a decimal number up to 1e9; 0 on success, -1 otherwise. */
int bench_parse_uint(const char *text, unsigned *out);
/* Parse a size option's value (mos/size.h: a plain number counts in unit) within [min, max];
 * 0, or -1 after one line "mosbench BENCH: OPTION 'TEXT' is ..." on stderr. */
int bench_parse_size(const char *bench, const char *option, const char *text, uint64_t unit,
                     uint64_t min, uint64_t max, uint64_t *out);

int bench_gossip_model(int argc, char **argv);
int bench_balance(int argc, char **argv);
/* mosbench balance --sim: the balancer's decision code over simulated nodes. */
int bench_balance_sim(int argc, char **argv);
int bench_syscall(int argc, char **argv);
int bench_seal(int argc, char **argv);
int bench_migrate(int argc, char **argv);
int bench_transport(int argc, char **argv);
int bench_gossip(int argc, char **argv);
int bench_placement(int argc, char **argv);
int bench_faults(int argc, char **argv);
int bench_gossip_lab(int argc, char **argv);
int bench_mpi(int argc, char **argv);
/* Runs the lab benchmark script installed beside mosbench as mosbench-NAME; returns only if it
 * cannot (1, after one line). */
int bench_run_script(const char *name, int argc, char **argv);

#endif
