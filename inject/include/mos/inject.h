/* Injection library: seize a task and run system calls inside it (in-tree users: migrate, remote, runtime).
 *
 * Mechanism only, in the manner of CRIU's compel: it knows nothing of images, transport or
 * policy. A handle holds the task's registers and signal mask as they were when it was
 * stopped; every injected call puts back the registers (and any code bytes it had to patch)
 * before it returns, also on error, and mos_inject_release() puts back the mask.
 *
 * How a call runs: the registers are set to the call's number and arguments with rip on a
 * `syscall` instruction (0f 05), the task is resumed with PTRACE_SYSCALL to its syscall-entry
 * stop and again to its syscall-exit stop, where rax is the result. Nothing after the
 * instruction ever runs while we live, so a call may even unmap the page it was issued from.
 * From the first call until mos_inject_rest() or release every blockable signal is blocked
 * in the task, so no handler can run in the middle of an injection; signals that arrive stay
 * pending and are seen by the capture.
 *
 * If we die holding a task, it must go on as it was seized, not run on from an injected
 * call's registers. For that a task we seized carries, from its first call, a *rescue
 * frame*: a signal frame below its stack's red zone with its registers, mask and FPU state,
 * and calls run at a `syscall; ret` of its own code whose return lands on its rt_sigreturn
 * trampoline (src/rescue.c). Not for a task with PTRACE_O_EXITKILL (it dies with us), nor
 * where the caller chose the call site, nor where the pieces are missing (no libc trampoline,
 * a shadow stack, no room): those are held as before. */
#ifndef MOS_INJECT_H
#define MOS_INJECT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct mos_inject;

/* Stop a running task: PTRACE_SEIZE + PTRACE_INTERRUPT, wait for the stop. Its registers are
 * saved with an interrupted system call already turned into its restart (rax = orig_rax,
 * rip -= 2; -ERESTART_RESTARTBLOCK becomes -EINTR) so they can be set again anywhere.
 * Returns 0 or -errno (-EPERM: no right to trace, -ESRCH: gone). */
int mos_inject_seize(pid_t pid, struct mos_inject **out);

/* The same, calling hook(arg) between the interrupt and the wait for the stop: a task blocked
 * where only the caller can wake it (in a seccomp user notification, say) is answered there,
 * and then stops on its way out. */
int mos_inject_seize_hooked(pid_t pid, void (*hook)(void *), void *arg, struct mos_inject **out);

/* Take over a child that called PTRACE_TRACEME and is now stopped after execve (its SIGTRAP
 * stop). The SIGTRAP is swallowed. Returns 0 or -errno. */
int mos_inject_adopt_traceme(pid_t pid, struct mos_inject **out);

/* Choose where injected calls execute: addr must be in an executable mapping. If the bytes
 * there are not a `syscall` instruction, each call patches them and puts them back. The
 * task has no rescue frame from then on. */
int mos_inject_set_exec_addr(struct mos_inject *t, uint64_t addr);

/* Look for a `syscall` instruction in the task's vDSO and use it (nothing to patch); else use
 * the start of the first executable mapping (patched per call). Returns 0 or -errno. */
int mos_inject_pick_exec_addr(struct mos_inject *t);

/* Run syscall nr(args[0..5]) in the task. Returns the injection status (0, or -errno /
 * MOS_E_* when the task could not be driven: then it may be dead); the remote call's own
 * return value (a negative errno on failure) goes to *result. */
int mos_inject_syscall(struct mos_inject *t, long nr, const long args[6], long *result);

/* clone3(args, size) in the task, the clone_args at args in the task; made for a thread
 * (CLONE_THREAD): the new task is traced too (PTRACE_O_TRACECLONE for this call only) and
 * comes back in *child, stopped before its first instruction, every signal blocked, its
 * registers those of the call's return (rax 0, rip after the syscall instruction). *result
 * is the call's return value (the new tid or -errno; then *child is NULL). Returns the
 * injection status. */
int mos_inject_clone_thread(struct mos_inject *t, uint64_t args, size_t size, long *result,
                            struct mos_inject **child);

/* A batch: system calls the task runs itself, one after the other, from a piece of code of
 * ours (mos_inject_batch_code) placed in executable memory of the task, with a list of
 * calls in its memory; it ends at an int3. One ptrace stop for the whole list instead of two
 * per injected call: what makes a thread's restore cheap. */
struct mos_batch_call {
    uint32_t nr;
    uint32_t flags;   /* MOS_BATCH_* */
    uint64_t args[6];
    int64_t result;   /* written by the task; untouched for a call that did not run */
};
#define MOS_BATCH_STOP_ON_ERROR 1u /* a negative result ends the batch there */
#define MOS_BATCH_FORK_TO 2u       /* a clone: the child goes on with the list at args[5] */
#define MOS_BATCH_END 4u           /* the end of a list: nothing runs from this entry */

/* The code, position-independent, to copy into the task. */
const uint8_t *mos_inject_batch_code(size_t *len);

/* Run the list at table with the code at code (both in the task). Each FORK_TO clone that
 * makes a thread (CLONE_THREAD) comes back in children[] (at most max, in the order made),
 * traced, having run its own list up to its end: stopped there, every signal blocked but
 * SIGTRAP. The int3 that ends a list resets the process's SIGTRAP disposition to SIG_DFL
 * (the kernel's forced SIGTRAP does that to a blocked one): a caller whose program handles
 * SIGTRAP sets it again. Returns the injection status; the calls' results are in the list. */
int mos_inject_batch_run(struct mos_inject *t, uint64_t code, uint64_t table,
                         struct mos_inject **children, size_t max, size_t *nchildren);

/* execve(path, argv, envp) in the task, the three at addresses in the task. On success the
 * handle describes the new program, stopped before its first instruction (released, it starts
 * there); on failure (*result < 0) the old one is untouched. Returns the injection status. */
int mos_inject_execve(struct mos_inject *t, uint64_t path, uint64_t argv, uint64_t envp,
                      long *result);

/* On release the task waits in pause() forever (every signal blocked, only SIGKILL ends it;
 * an interrupted pause restarts): rip on a syscall instruction, rax = pause. 0 or -errno. */
int mos_inject_park(struct mos_inject *t);

/* Convenience: run the call and fold both statuses into one: 0, the remote -errno, or the
 * injection status. Used where the caller does not need to tell them apart. */
int mos_inject_call(struct mos_inject *t, long nr, long a0, long a1, long a2, long a3, long a4,
                    long a5, long *result);

/* Memory of the task: process_vm_{readv,writev}, falling back to /proc/PID/mem (which can
 * reach pages without read or write permission). Return 0 or -errno. */
int mos_inject_read(struct mos_inject *t, uint64_t addr, void *buf, size_t len);
int mos_inject_write(struct mos_inject *t, uint64_t addr, const void *buf, size_t len);

pid_t mos_inject_pid(const struct mos_inject *t);
/* Where injected calls run (0: not chosen yet). */
uint64_t mos_inject_exec_addr(const struct mos_inject *t);
/* The registers saved at stop time (normalized as described at mos_inject_seize). */
const struct user_regs_struct *mos_inject_regs(const struct mos_inject *t);
/* The signal mask the task had when stopped. */
uint64_t mos_inject_sigmask(const struct mos_inject *t);
/* Registers and mask the task gets back when released (restore sets the captured ones). */
void mos_inject_set_regs(struct mos_inject *t, const struct user_regs_struct *regs);
void mos_inject_set_sigmask(struct mos_inject *t, uint64_t mask);
/* The stop-time xstate (FPU/SSE/AVX...) via PTRACE_GETREGSET NT_X86_XSTATE; *len in: buffer
 * size, out: bytes. And the same to set. Return 0 or -errno. */
int mos_inject_get_xstate(struct mos_inject *t, void *buf, size_t *len);
int mos_inject_set_xstate(struct mos_inject *t, const void *buf, size_t len);

/* Before a time without calls (the capture reading the task's memory, say): put back what
 * the calls borrowed, the bytes under the rescue frame, the registers and the mask as they
 * were at the stop. The next call arms again. 0 or -errno. */
int mos_inject_rest(struct mos_inject *t);
/* 1 while a rescue frame is in place. */
int mos_inject_rescue_armed(const struct mos_inject *t);
/* Kill the task if we die (PTRACE_O_EXITKILL): for a task we are rebuilding, which must not
 * run half-built. Drops the rescue. 0 or -errno. */
int mos_inject_exit_kill(struct mos_inject *t);

/* Put back registers and mask and let the task go (PTRACE_DETACH). Frees t. 0 or -errno. */
int mos_inject_release(struct mos_inject *t);
/* SIGKILL the task and reap it if it is our child. Frees t. */
void mos_inject_kill(struct mos_inject *t);
/* End one thread (not the leader) of a process we hold: an injected exit(0) in it, and its
 * reaping (a traced thread is its tracer's to reap). The rest of the process stays held.
 * Frees t on success (0); else -errno and t is still the caller's. */
int mos_inject_thread_exit(struct mos_inject *t);
/* SIGKILL a process of which we hold the leader and the n other threads (NULLs skipped);
 * the threads are reaped first (a traced thread is its tracer's to reap, and the leader is
 * reaped only after them). Frees all and sets others[] to NULL. */
void mos_inject_kill_group(struct mos_inject *leader, struct mos_inject **others, size_t n);

#endif
