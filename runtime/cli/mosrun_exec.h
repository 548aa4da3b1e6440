/* mosrun -E: run PROGRAM natively on another node with its stdio here (mosrun_exec.c). */
#ifndef MOSRUN_EXEC_H
#define MOSRUN_EXEC_H

/* Exit status of mosrun when the node running its job died with the job on it. */
#define MOSRUN_EXIT_LOST 113

/* Exit the way a job with wait status `status` did, so a shell sees the same status (or the
 * same signal). In mosrun.c. */
void mosrun_exit_like(int status) __attribute__((noreturn));

/* target: a node name or "@best"; mem_mib: memory the program needs, for "@best"; words: the
 * command as ssh takes it (joined, run by the user's shell). Never returns: mosrun ends as the
 * program did, or with 113 (lost), 1 (refused), as it says. */
void mosrun_exec_run(const char *config, const char *target, long mem_mib, char **words)
    __attribute__((noreturn));

#endif
