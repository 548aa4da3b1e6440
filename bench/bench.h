/* The benchmarks of mosbench: one function per subcommand, given the arguments after its name.
 * Each returns the process exit status (0 ok, 2 bad usage, 1 failure). */
#ifndef MOS_BENCH_H
#define MOS_BENCH_H

/* Parse a decimal number up to 1e9; 0 on success, -1 otherwise. */
int bench_parse_uint(const char *text, unsigned *out);

int bench_gossip_model(int argc, char **argv);
int bench_balance(int argc, char **argv);
int bench_syscall(int argc, char **argv);
int bench_migrate(int argc, char **argv);
int bench_transport(int argc, char **argv);
int bench_gossip(int argc, char **argv);
int bench_placement(int argc, char **argv);

#endif
