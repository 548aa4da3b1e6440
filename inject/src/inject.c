/* Injection library: see inject.h. */
#include "mos/inject.h"

#include "mos/log.h"
#include "mos/procfs.h"
#include "mos/status.h"
#include "rescue.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Kernel-internal restart codes a task stopped inside a system call shows in rax. */
#define K_ERESTARTSYS 512
#define K_ERESTARTNOINTR 513
#define K_ERESTARTNOHAND 514
#define K_ERESTART_RESTARTBLOCK 516

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

struct mos_inject {
    pid_t pid;
    int mem_fd;                          /* /proc/PID/mem, opened on first need */
    uint64_t exec_addr;                  /* where injected calls run */
    int exec_patch;                      /* 1: the bytes there must be patched per call */
    struct user_regs_struct stop_regs;   /* as stopped (normalized) */
    struct user_regs_struct final_regs;  /* what the task gets back on release */
    uint64_t stop_mask, final_mask;
    int mask_blocked;                    /* every blockable signal blocked (for a call) */
    long options;                        /* PTRACE_O_* set on it */
    int exec_fixed;                      /* the caller chose exec_addr */
    int rescue;                          /* 0: not tried, 1: sites found, -1: none */
    struct rescue_sites sites;
    struct rescue_frame frame;           /* in place (frame.addr != 0): armed */
};

static const uint8_t syscall_insn[2] = {0x0f, 0x05};

static int wait_stop(pid_t pid, int *status)
{
    for (;;) {
        if (waitpid(pid, status, __WALL) == pid)
            break;
        if (errno != EINTR)
            return mos_errno_status();
    }
    if (WIFEXITED(*status) || WIFSIGNALED(*status))
        return -ESRCH;
    return 0;
}

/* A task stopped inside a system call shows the kernel's restart code in rax; resuming it
 * from a ptrace stop after we moved its registers would return that code to user space, so
 * do what the kernel's signal path would have done (no handler runs here). */
static void regs_normalize(struct user_regs_struct *r)
{
    if ((long)r->orig_rax < 0)
        return;
    switch ((long)r->rax) {
    case -K_ERESTARTSYS:
    case -K_ERESTARTNOINTR:
    case -K_ERESTARTNOHAND:
        r->rax = r->orig_rax;
        r->rip -= 2;
        break;
    case -K_ERESTART_RESTARTBLOCK:
        /* The restart block lives in the kernel task, not in anything we carry. */
        r->rax = (uint64_t)-EINTR;
        break;
    }
    r->orig_rax = (uint64_t)-1;
}

static void inject_free(struct mos_inject *t)
{
    if (t->mem_fd >= 0)
        close(t->mem_fd);
    rescue_frame_drop(&t->frame);
    free(t);
}

static struct mos_inject *inject_new(pid_t pid)
{
    struct mos_inject *t = calloc(1, sizeof(*t));

    if (t) {
        t->pid = pid;
        t->mem_fd = -1;
    }
    return t;
}

/* Common part once the task sits in a ptrace stop: save registers and mask. Signals are
 * blocked only when a call is to run (mask_block): a task that only sits in its stop cannot
 * take one, and one that is let go by our death then goes on with its own mask. */
static int inject_take(struct mos_inject *t, int have_mask)
{
    if (ptrace(PTRACE_GETREGS, t->pid, NULL, &t->stop_regs) < 0)
        return mos_errno_status();
    regs_normalize(&t->stop_regs);
    t->final_regs = t->stop_regs;
    if (!have_mask && ptrace(PTRACE_GETSIGMASK, t->pid, sizeof(uint64_t), &t->stop_mask) < 0)
        return mos_errno_status();
    t->final_mask = t->stop_mask;
    t->mask_blocked = have_mask;
    return 0;
}

static int mask_block(struct mos_inject *t)
{
    uint64_t all = ~0ull;
    const uint64_t unblockable = (1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1));

    /* a thread we made blocks everything already (its cloner did): nothing to set or put back */
    if (t->mask_blocked || (t->stop_mask | unblockable) == all)
        return 0;
    if (ptrace(PTRACE_SETSIGMASK, t->pid, sizeof(uint64_t), &all) < 0)
        return mos_errno_status();
    t->mask_blocked = 1;
    return 0;
}

/* Where the task waits between calls: with the rescue armed, on its rt_sigreturn with rsp
 * past the frame's return slot (see rescue.c); else as stopped. */
static int regs_park(struct mos_inject *t)
{
    struct user_regs_struct r = t->stop_regs;

    if (t->frame.addr) {
        r.rip = t->sites.sigreturn;
        r.rsp = t->frame.addr + 8;
        r.orig_rax = (uint64_t)-1;
    }
    return ptrace(PTRACE_SETREGS, t->pid, NULL, &r) < 0 ? mos_errno_status() : 0;
}

/* Where the task waits after a call. At a clean exit stop an armed task waits already: its next
 * instruction is the call site's `ret` onto the frame's trampoline, which is where regs_park
 * would put it. A task with EXITKILL dies with us. Neither needs its registers set then (a
 * ptrace call less per call); after an error, or a call the kernel could restart (an
 * -ERESTART* result, which would move rip back onto the `syscall`), every task is parked. */
static int call_park(struct mos_inject *t, int rc, long res)
{
    int restartable = res <= -512 && res >= -516;

    if (rc == 0 && !restartable && (t->frame.addr || (t->options & PTRACE_O_EXITKILL)))
        return 0;
    return regs_park(t);
}

/* Arm the rescue if this task can have one; a task that cannot is held as before (a husk of
 * ours dies with us anyway: PTRACE_O_EXITKILL). */
static void rescue_arm(struct mos_inject *t)
{
    int rc = 0;

    if (t->frame.addr || t->rescue < 0)
        return;
    if ((t->options & PTRACE_O_EXITKILL) || t->exec_fixed) {
        t->rescue = -1;
        return;
    }
    if (t->rescue == 0)
        rc = rescue_sites_find(t->pid, &t->sites);
    if (rc == 0)
        rc = rescue_frame_place(t->pid, &t->stop_regs, t->stop_mask, t->sites.sigreturn,
                                &t->frame);
    if (rc == 0 && (rc = regs_park(t)) != 0)
        rescue_frame_remove(t->pid, &t->frame);
    if (rc != 0) {
        mos_dbg("inject", "pid %d: held without a rescue frame: %s", (int)t->pid,
                mos_strerror(rc));
        t->rescue = -1;
        return;
    }
    t->rescue = 1;
}

int mos_inject_rest(struct mos_inject *t)
{
    int rc = 0;

    /* in this order: at no point would our death let the task run on a frame half gone */
    if (t->mask_blocked &&
        ptrace(PTRACE_SETSIGMASK, t->pid, sizeof(uint64_t), &t->stop_mask) < 0)
        rc = mos_errno_status();
    if (rc == 0)
        t->mask_blocked = 0;
    if (t->frame.addr && rc == 0) {
        if (ptrace(PTRACE_SETREGS, t->pid, NULL, &t->stop_regs) < 0)
            return mos_errno_status();
        rc = rescue_frame_remove(t->pid, &t->frame);
    }
    return rc;
}

int mos_inject_exit_kill(struct mos_inject *t)
{
    int rc = mos_inject_rest(t);
    long options = t->options | PTRACE_O_EXITKILL;

    if (rc == 0 && ptrace(PTRACE_SETOPTIONS, t->pid, NULL, (void *)options) < 0)
        rc = mos_errno_status();
    if (rc == 0) {
        t->options = options;
        t->rescue = -1;
    }
    return rc;
}

int mos_inject_rescue_armed(const struct mos_inject *t)
{
    return t->frame.addr != 0;
}

/* Registers for an injected call: the stopped ones, signals blocked, rip on a syscall
 * instruction; armed, on the rescue's `syscall; ret` with rsp on its frame. *patch: the
 * bytes at rip must be patched for the call. */
static int call_regs(struct mos_inject *t, long nr, struct user_regs_struct *r, int *patch)
{
    int rc = mask_block(t);

    if (rc != 0)
        return rc;
    rescue_arm(t);
    if (!t->frame.addr && !t->exec_addr && (rc = mos_inject_pick_exec_addr(t)) != 0)
        return rc;
    *r = t->stop_regs;
    r->rax = (uint64_t)nr;
    r->orig_rax = (uint64_t)-1;
    r->rip = t->frame.addr ? t->sites.call : t->exec_addr;
    if (t->frame.addr)
        r->rsp = t->frame.addr;
    *patch = !t->frame.addr && t->exec_patch;
    return 0;
}

int mos_inject_seize(pid_t pid, struct mos_inject **out)
{
    return mos_inject_seize_hooked(pid, NULL, NULL, out);
}

int mos_inject_seize_hooked(pid_t pid, void (*hook)(void *), void *arg, struct mos_inject **out)
{
    struct mos_inject *t = inject_new(pid);
    int rc, status, have_mask = 0;
    uint64_t all = ~0ull;

    if (!t)
        return -ENOMEM;
    t->options = PTRACE_O_TRACESYSGOOD;
    if (ptrace(PTRACE_SEIZE, pid, NULL, (void *)t->options) < 0) {
        rc = mos_errno_status();
        goto out_free;
    }
    if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) < 0) {
        rc = mos_errno_status();
        goto out_detach;
    }
    if (hook)
        hook(arg);
    for (;;) {
        rc = wait_stop(pid, &status);
        if (rc != 0)
            goto out_free;
        if (status >> 16 == PTRACE_EVENT_STOP)
            break;
        /* A signal-delivery stop raced with the interrupt. Block everything first: a signal
         * handed back to a task that blocks it is queued again (kernel ptrace_signal), so it
         * stays pending instead of running its handler or being lost. */
        if (!have_mask) {
            if (ptrace(PTRACE_GETSIGMASK, pid, sizeof(uint64_t), &t->stop_mask) < 0 ||
                ptrace(PTRACE_SETSIGMASK, pid, sizeof(uint64_t), &all) < 0) {
                rc = mos_errno_status();
                goto out_detach;
            }
            have_mask = 1;
        }
        if (ptrace(PTRACE_CONT, pid, NULL, (void *)(long)WSTOPSIG(status)) < 0) {
            rc = mos_errno_status();
            goto out_detach;
        }
    }
    rc = inject_take(t, have_mask);
    if (rc != 0)
        goto out_detach;
    *out = t;
    return 0;
out_detach:
    if (have_mask)
        ptrace(PTRACE_SETSIGMASK, pid, sizeof(uint64_t), &t->stop_mask);
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
out_free:
    free(t);
    return rc;
}

int mos_inject_adopt_traceme(pid_t pid, struct mos_inject **out)
{
    struct mos_inject *t = inject_new(pid);
    int rc, status;

    if (!t)
        return -ENOMEM;
    rc = wait_stop(pid, &status);
    if (rc != 0)
        goto out_free;
    if (WSTOPSIG(status) != SIGTRAP) {
        mos_err("migrate", "pid %d: expected the exec SIGTRAP stop, got signal %d", (int)pid,
                WSTOPSIG(status));
        rc = -EPROTO;
        goto out_free;
    }
    t->options = PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL;
    if (ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)t->options) < 0) {
        rc = mos_errno_status();
        goto out_free;
    }
    rc = inject_take(t, 0);
    if (rc != 0)
        goto out_free;
    *out = t;
    return 0;
out_free:
    free(t);
    return rc;
}

static int exec_addr_set(struct mos_inject *t, uint64_t addr)
{
    uint8_t code[2];
    int rc = mos_inject_read(t, addr, code, sizeof(code));

    if (rc != 0)
        return rc;
    t->exec_addr = addr;
    t->exec_patch = memcmp(code, syscall_insn, sizeof(code)) != 0;
    return 0;
}

int mos_inject_set_exec_addr(struct mos_inject *t, uint64_t addr)
{
    /* the caller's spot, patched if need be: the rescue's own is not used any more */
    int rc = t->frame.addr ? mos_inject_rest(t) : 0;

    if (rc == 0)
        rc = exec_addr_set(t, addr);
    if (rc == 0)
        t->exec_fixed = 1;
    return rc;
}

int mos_inject_pick_exec_addr(struct mos_inject *t)
{
    struct mos_vma_list list;
    uint64_t fallback = 0;
    int rc = mos_vma_list_read(t->pid, &list);

    if (rc != 0)
        return rc;
    rc = -ENOEXEC;
    for (size_t i = 0; i < list.count; i++) {
        struct mos_vma *v = &list.vmas[i];
        if (!(v->prot & PROT_EXEC))
            continue;
        if (!fallback)
            fallback = v->start;
        if (strcmp(v->path, "[vdso]") != 0 || v->end - v->start > (1u << 20))
            continue;
        size_t len = v->end - v->start;
        uint8_t *buf = malloc(len);
        if (buf && mos_inject_read(t, v->start, buf, len) == 0)
            for (size_t off = 0; off + 1 < len; off++)
                if (buf[off] == 0x0f && buf[off + 1] == 0x05) {
                    t->exec_addr = v->start + off;
                    t->exec_patch = 0;
                    rc = 0;
                    break;
                }
        free(buf);
    }
    if (rc != 0 && fallback)
        rc = exec_addr_set(t, fallback);
    mos_vma_list_free(&list);
    return rc;
}

static int patch_swap(struct mos_inject *t, long *saved_word, int put_back)
{
    long word;

    if (put_back)
        word = *saved_word;
    else {
        errno = 0;
        word = ptrace(PTRACE_PEEKTEXT, t->pid, (void *)t->exec_addr, NULL);
        if (errno != 0)
            return mos_errno_status();
        *saved_word = word;
        memcpy(&word, syscall_insn, sizeof(syscall_insn));
    }
    if (ptrace(PTRACE_POKETEXT, t->pid, (void *)t->exec_addr, (void *)word) < 0)
        return mos_errno_status();
    return 0;
}

/* Resume to the next syscall stop; anything else is an error (the signals that could arrive
 * are blocked, so another stop means a fault or SIGSTOP). */
static int run_to_syscall_stop(pid_t pid)
{
    int status, rc;

    if (ptrace(PTRACE_SYSCALL, pid, NULL, NULL) < 0)
        return mos_errno_status();
    rc = wait_stop(pid, &status);
    if (rc != 0)
        return rc;
    if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
        mos_err("migrate", "pid %d: unexpected stop (signal %d, event %d) in an injected call",
                (int)pid, WSTOPSIG(status), status >> 16);
        return -EFAULT;
    }
    return 0;
}

int mos_inject_syscall(struct mos_inject *t, long nr, const long args[6], long *result)
{
    struct user_regs_struct r;
    long saved_word = 0;
    int rc, rc2, patch;

    if ((rc = call_regs(t, nr, &r, &patch)) != 0)
        return rc;
    r.rdi = (uint64_t)args[0];
    r.rsi = (uint64_t)args[1];
    r.rdx = (uint64_t)args[2];
    r.r10 = (uint64_t)args[3];
    r.r8 = (uint64_t)args[4];
    r.r9 = (uint64_t)args[5];
    if (patch) {
        rc = patch_swap(t, &saved_word, 0);
        if (rc != 0)
            return rc;
    }
    if (ptrace(PTRACE_SETREGS, t->pid, NULL, &r) < 0) {
        rc = mos_errno_status();
        goto out_unpatch;
    }
    rc = run_to_syscall_stop(t->pid); /* entry */
    if (rc == 0)
        rc = run_to_syscall_stop(t->pid); /* exit */
    if (rc == 0 && ptrace(PTRACE_GETREGS, t->pid, NULL, &r) < 0)
        rc = mos_errno_status();
    if (rc == 0)
        *result = (long)r.rax;
    if (rc != -ESRCH && (rc2 = call_park(t, rc, (long)r.rax)) != 0 && rc == 0)
        rc = rc2;
out_unpatch:
    if (patch && rc != -ESRCH) {
        rc2 = patch_swap(t, &saved_word, 1);
        if (rc == 0)
            rc = rc2;
    }
    return rc;
}

/* The new thread's first stop: SIGSTOP (a tracer by PTRACE_TRACEME or ATTACH) or an event
 * stop (a seizing tracer). It has not run a single instruction of its own yet. */
static int clone_child_take(struct mos_inject *parent, pid_t tid, struct mos_inject **out)
{
    struct mos_inject *c = inject_new(tid);
    int status, rc = c ? wait_stop(tid, &status) : -ENOMEM;

    if (rc == 0 && (rc = inject_take(c, 0)) == 0) {
        c->exec_addr = parent->exec_addr;
        c->exec_patch = parent->exec_patch;
        c->exec_fixed = parent->exec_fixed;
        c->options = parent->options;
        *out = c;
        return 0;
    }
    free(c);
    return rc;
}

/* Run the injected call up to its exit stop, answering the clone event on the way. */
static int clone_run(struct mos_inject *t, pid_t *tid)
{
    int status, rc;
    unsigned long msg = 0;

    rc = run_to_syscall_stop(t->pid); /* entry */
    if (rc != 0 || (rc = ptrace(PTRACE_SYSCALL, t->pid, NULL, NULL) < 0 ? mos_errno_status() : 0))
        return rc;
    if ((rc = wait_stop(t->pid, &status)) != 0)
        return rc;
    if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_CLONE << 8))) {
        if (ptrace(PTRACE_GETEVENTMSG, t->pid, NULL, &msg) < 0)
            return mos_errno_status();
        *tid = (pid_t)msg;
        return run_to_syscall_stop(t->pid); /* exit */
    }
    if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
        mos_err("migrate", "pid %d: unexpected stop (signal %d) in an injected clone3",
                (int)t->pid, WSTOPSIG(status));
        return -EFAULT;
    }
    return 0; /* the call failed: no event, its exit stop */
}

int mos_inject_clone_thread(struct mos_inject *t, uint64_t args, size_t size, long *result,
                            struct mos_inject **child)
{
    struct user_regs_struct r;
    long saved_word = 0;
    pid_t tid = 0;
    int rc, rc2, patch;

    *child = NULL;
    if ((rc = call_regs(t, SYS_clone3, &r, &patch)) != 0)
        return rc;
    r.rdi = args;
    r.rsi = size;
    if (patch && (rc = patch_swap(t, &saved_word, 0)) != 0)
        return rc;
    if (ptrace(PTRACE_SETOPTIONS, t->pid, NULL, (void *)(t->options | PTRACE_O_TRACECLONE)) < 0 ||
        ptrace(PTRACE_SETREGS, t->pid, NULL, &r) < 0) {
        rc = mos_errno_status();
        goto out;
    }
    rc = clone_run(t, &tid);
    if (rc == 0 && ptrace(PTRACE_GETREGS, t->pid, NULL, &r) < 0)
        rc = mos_errno_status();
    if (rc == 0)
        *result = (long)r.rax;
    if (rc == 0 && tid > 0)
        rc = clone_child_take(t, tid, child);
    if (rc != -ESRCH && (rc2 = call_park(t, rc, (long)r.rax)) != 0 && rc == 0)
        rc = rc2;
out:
    if (rc != -ESRCH)
        ptrace(PTRACE_SETOPTIONS, t->pid, NULL, (void *)t->options);
    if (patch && rc != -ESRCH && (rc2 = patch_swap(t, &saved_word, 1)) != 0 && rc == 0)
        rc = rc2;
    return rc;
}

/* The batch runner (inject.h), rbx on the current entry. It clobbers rax, rcx, r11 and the
 * argument registers and never touches the stack, so a child that clone3 made without a stack
 * of its own shares the parent's rsp harmlessly; an int3 ends it, the one stop of a batch.
 *
 *   start: mov eax,[rbx+4]; test eax,END; jnz done
 *          mov eax,[rbx]; mov rdi,[rbx+8]; mov rsi,[rbx+16]; mov rdx,[rbx+24]
 *          mov r10,[rbx+32]; mov r8,[rbx+40]; mov r9,[rbx+48]; syscall
 *          test byte [rbx+4],FORK_TO; jz store; test rax,rax; jnz store
 *          mov rbx,[rbx+48]; jmp start                      ; the child: its own list
 *   store: mov [rbx+56],rax; test rax,rax; jns next
 *          test byte [rbx+4],STOP_ON_ERROR; jnz done
 *   next:  add rbx,64; jmp start
 *   done:  int3
 */
static const uint8_t batch_code[] = {
    0x8b, 0x43, 0x04, 0xa9, 0x04, 0x00, 0x00, 0x00, 0x75, 0x42, 0x8b, 0x03, 0x48, 0x8b, 0x7b,
    0x08, 0x48, 0x8b, 0x73, 0x10, 0x48, 0x8b, 0x53, 0x18, 0x4c, 0x8b, 0x53, 0x20, 0x4c, 0x8b,
    0x43, 0x28, 0x4c, 0x8b, 0x4b, 0x30, 0x0f, 0x05, 0xf6, 0x43, 0x04, 0x02, 0x74, 0x0b, 0x48,
    0x85, 0xc0, 0x75, 0x06, 0x48, 0x8b, 0x5b, 0x30, 0xeb, 0xc9, 0x48, 0x89, 0x43, 0x38, 0x48,
    0x85, 0xc0, 0x79, 0x06, 0xf6, 0x43, 0x04, 0x01, 0x75, 0x06, 0x48, 0x83, 0xc3, 0x40, 0xeb,
    0xb4, 0xcc};

_Static_assert(sizeof(struct mos_batch_call) == 64 && offsetof(struct mos_batch_call, flags) == 4 &&
                   offsetof(struct mos_batch_call, args) == 8 &&
                   offsetof(struct mos_batch_call, result) == 56,
               "batch_code reads this layout");
_Static_assert(MOS_BATCH_STOP_ON_ERROR == 1 && MOS_BATCH_FORK_TO == 2 && MOS_BATCH_END == 4,
               "batch_code tests these bits");

const uint8_t *mos_inject_batch_code(size_t *len)
{
    *len = sizeof(batch_code);
    return batch_code;
}

/* The stop at a list's end: SIGTRAP with rip past the int3. The task is held again with every
 * signal blocked (the forced SIGTRAP unblocked its own), its registers as stopped there. */
static int batch_trap_take(struct mos_inject *t, int status, uint64_t code)
{
    const uint64_t all = ~0ull;
    struct user_regs_struct r;

    if (status >> 8 != SIGTRAP || ptrace(PTRACE_GETREGS, t->pid, NULL, &r) < 0 ||
        r.rip != code + sizeof(batch_code)) {
        mos_err("inject", "pid %d: unexpected stop (status 0x%x) in a batch", (int)t->pid,
                status);
        return -EFAULT;
    }
    if (ptrace(PTRACE_SETSIGMASK, t->pid, sizeof(all), &all) < 0)
        return mos_errno_status();
    return 0;
}

/* The leader's run up to its int3 (*status): every clone event gives a child, let go at once
 * on its own list, so that children and leader run side by side. */
static int batch_leader_run(struct mos_inject *t, struct mos_inject **children, size_t max,
                            size_t *n, int *status)
{
    for (;;) {
        unsigned long msg = 0;
        int rc = ptrace(PTRACE_CONT, t->pid, NULL, NULL) < 0 ? mos_errno_status() : 0;
        if (rc == 0)
            rc = wait_stop(t->pid, status);
        if (rc != 0)
            return rc;
        if (*status >> 8 != (SIGTRAP | (PTRACE_EVENT_CLONE << 8)))
            return 0;
        if (ptrace(PTRACE_GETEVENTMSG, t->pid, NULL, &msg) < 0)
            return mos_errno_status();
        if (*n == max)
            return -E2BIG;
        if ((rc = clone_child_take(t, (pid_t)msg, &children[*n])) != 0)
            return rc;
        (*n)++;
        if (ptrace(PTRACE_CONT, (pid_t)msg, NULL, NULL) < 0)
            return mos_errno_status();
    }
}

int mos_inject_batch_run(struct mos_inject *t, uint64_t code, uint64_t table,
                         struct mos_inject **children, size_t max, size_t *nchildren)
{
    struct user_regs_struct r;
    int rc, rc2, patch, status = 0;

    *nchildren = 0;
    if ((rc = call_regs(t, 0, &r, &patch)) != 0)
        return rc;
    r.rip = code;
    r.rbx = table;
    if (ptrace(PTRACE_SETOPTIONS, t->pid, NULL, (void *)(t->options | PTRACE_O_TRACECLONE)) < 0 ||
        ptrace(PTRACE_SETREGS, t->pid, NULL, &r) < 0)
        return mos_errno_status();
    rc = batch_leader_run(t, children, max, nchildren, &status);
    if (rc == 0)
        rc = batch_trap_take(t, status, code);
    for (size_t i = 0; i < *nchildren && rc == 0; i++) {
        struct mos_inject *c = children[i];
        if ((rc = wait_stop(c->pid, &status)) == 0 && (rc = batch_trap_take(c, status, code)) == 0)
            c->mask_blocked = 1;
    }
    if (rc == -ESRCH)
        return rc;
    ptrace(PTRACE_SETOPTIONS, t->pid, NULL, (void *)t->options);
    /* parked, not left on the int3: released, the leader goes back to where it stopped */
    if ((rc2 = regs_park(t)) != 0 && rc == 0)
        rc = rc2;
    return rc;
}

int mos_inject_execve(struct mos_inject *t, uint64_t path, uint64_t argv, uint64_t envp,
                      long *result)
{
    struct user_regs_struct r = t->stop_regs;
    long saved_word = 0;
    int rc = mos_inject_rest(t); /* the frame's stack goes with the old program */

    if (rc == 0)
        rc = mask_block(t);
    if (rc != 0)
        return rc;
    if (!t->exec_addr && (rc = mos_inject_pick_exec_addr(t)) != 0)
        return rc;
    r.rax = SYS_execve;
    r.orig_rax = (uint64_t)-1;
    r.rdi = path;
    r.rsi = argv;
    r.rdx = envp;
    r.rip = t->exec_addr;
    if (t->exec_patch && (rc = patch_swap(t, &saved_word, 0)) != 0)
        return rc;
    if (ptrace(PTRACE_SETREGS, t->pid, NULL, &r) < 0)
        return mos_errno_status();
    rc = run_to_syscall_stop(t->pid); /* entry */
    if (rc == 0)
        rc = run_to_syscall_stop(t->pid); /* exit: in the new program when it worked */
    if (rc == 0 && ptrace(PTRACE_GETREGS, t->pid, NULL, &r) < 0)
        rc = mos_errno_status();
    if (rc != 0)
        return rc;
    *result = (long)r.rax;
    if (*result < 0) { /* the old program is still there: put everything back */
        if (ptrace(PTRACE_SETREGS, t->pid, NULL, &t->stop_regs) < 0)
            return mos_errno_status();
        return t->exec_patch ? patch_swap(t, &saved_word, 1) : 0;
    }
    /* A new address space: nothing of the old one (code patch, mem fd, exec spot) is valid. */
    r.orig_rax = (uint64_t)-1;
    t->stop_regs = t->final_regs = r;
    t->exec_addr = 0;
    t->exec_patch = 0;
    t->exec_fixed = 0;
    t->rescue = 0;
    if (t->mem_fd >= 0)
        close(t->mem_fd);
    t->mem_fd = -1;
    return 0;
}

int mos_inject_park(struct mos_inject *t)
{
    long saved_word = 0;
    int rc = t->exec_addr ? 0 : mos_inject_pick_exec_addr(t);

    if (rc == 0 && t->exec_patch)
        rc = patch_swap(t, &saved_word, 0); /* for good: the program never runs from here */
    if (rc != 0)
        return rc;
    t->final_regs.rip = t->exec_addr;
    t->final_regs.rax = SYS_pause;
    t->final_regs.orig_rax = (uint64_t)-1;
    return 0;
}

int mos_inject_call(struct mos_inject *t, long nr, long a0, long a1, long a2, long a3, long a4,
                    long a5, long *result)
{
    const long args[6] = {a0, a1, a2, a3, a4, a5};
    long res = 0;
    int rc = mos_inject_syscall(t, nr, args, &res);

    if (rc != 0)
        return rc;
    if (res < 0 && res > -4096)
        return (int)res;
    if (result)
        *result = res;
    return 0;
}

static int mem_fd_get(struct mos_inject *t)
{
    char path[64];

    if (t->mem_fd < 0) {
        snprintf(path, sizeof(path), "/proc/%d/mem", (int)t->pid);
        t->mem_fd = open(path, O_RDWR | O_CLOEXEC);
        if (t->mem_fd < 0)
            return mos_errno_status();
    }
    return t->mem_fd;
}

static int mem_io(struct mos_inject *t, uint64_t addr, void *buf, size_t len, int write)
{
    int fd = mem_fd_get(t);

    if (fd < 0)
        return fd;
    while (len > 0) {
        ssize_t n = write ? pwrite(fd, buf, len, (off_t)addr) : pread(fd, buf, len, (off_t)addr);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? mos_errno_status() : -EIO;
        buf = (char *)buf + n;
        addr += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int mos_inject_read(struct mos_inject *t, uint64_t addr, void *buf, size_t len)
{
    struct iovec local = {buf, len}, remote = {(void *)addr, len};

    if (process_vm_readv(t->pid, &local, 1, &remote, 1, 0) == (ssize_t)len)
        return 0;
    return mem_io(t, addr, buf, len, 0);
}

int mos_inject_write(struct mos_inject *t, uint64_t addr, const void *buf, size_t len)
{
    struct iovec local = {(void *)buf, len}, remote = {(void *)addr, len};

    if (process_vm_writev(t->pid, &local, 1, &remote, 1, 0) == (ssize_t)len)
        return 0;
    return mem_io(t, addr, (void *)buf, len, 1);
}

pid_t mos_inject_pid(const struct mos_inject *t)
{
    return t->pid;
}

const struct user_regs_struct *mos_inject_regs(const struct mos_inject *t)
{
    return &t->stop_regs;
}

uint64_t mos_inject_sigmask(const struct mos_inject *t)
{
    return t->stop_mask;
}

uint64_t mos_inject_exec_addr(const struct mos_inject *t)
{
    return t->exec_addr;
}

void mos_inject_set_regs(struct mos_inject *t, const struct user_regs_struct *regs)
{
    t->final_regs = *regs;
}

void mos_inject_set_sigmask(struct mos_inject *t, uint64_t mask)
{
    t->final_mask = mask;
}

int mos_inject_get_xstate(struct mos_inject *t, void *buf, size_t *len)
{
    struct iovec iov = {buf, *len};

    if (ptrace(PTRACE_GETREGSET, t->pid, (void *)NT_X86_XSTATE, &iov) < 0)
        return mos_errno_status();
    *len = iov.iov_len;
    return 0;
}

int mos_inject_set_xstate(struct mos_inject *t, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};

    if (ptrace(PTRACE_SETREGSET, t->pid, (void *)NT_X86_XSTATE, &iov) < 0)
        return mos_errno_status();
    return 0;
}

int mos_inject_release(struct mos_inject *t)
{
    int rc = mos_inject_rest(t);

    if (ptrace(PTRACE_SETREGS, t->pid, NULL, &t->final_regs) < 0 ||
        ptrace(PTRACE_SETSIGMASK, t->pid, sizeof(uint64_t), &t->final_mask) < 0)
        rc = mos_errno_status();
    if (ptrace(PTRACE_DETACH, t->pid, NULL, NULL) < 0 && rc == 0)
        rc = mos_errno_status();
    inject_free(t);
    return rc;
}

void mos_inject_kill(struct mos_inject *t)
{
    int status;

    kill(t->pid, SIGKILL);
    while (waitpid(t->pid, &status, __WALL) < 0 && errno == EINTR)
        ;
    inject_free(t);
}

int mos_inject_thread_exit(struct mos_inject *t)
{
    struct user_regs_struct r = t->stop_regs;
    int status, rc = mos_inject_rest(t);
    long saved_word = 0;

    if (rc == 0)
        rc = mask_block(t);
    if (rc == 0 && !t->exec_addr)
        rc = mos_inject_pick_exec_addr(t);

    /* a patch stays: the caller replaces or ends the address space next */
    if (rc == 0 && t->exec_patch)
        rc = patch_swap(t, &saved_word, 0);
    r.rax = SYS_exit;
    r.orig_rax = (uint64_t)-1;
    r.rdi = 0;
    r.rip = t->exec_addr;
    if (rc == 0 && (ptrace(PTRACE_SETREGS, t->pid, NULL, &r) < 0 ||
                    ptrace(PTRACE_CONT, t->pid, NULL, NULL) < 0))
        rc = mos_errno_status();
    while (rc == 0) {
        pid_t got = waitpid(t->pid, &status, __WALL);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = mos_errno_status();
            break;
        }
        if (WIFEXITED(status) || WIFSIGNALED(status))
            break;
        /* any other stop (a signal, all blocked, cannot be one): on towards the exit */
        if (ptrace(PTRACE_CONT, t->pid, NULL, NULL) < 0)
            rc = mos_errno_status();
    }
    if (rc != 0)
        return rc;
    inject_free(t);
    return 0;
}

void mos_inject_kill_group(struct mos_inject *leader, struct mos_inject **others, size_t n)
{
    int status;

    /* A traced thread stays a zombie until its tracer reaps it, and the leader cannot be
     * reaped before every other thread is gone: the others first. */
    kill(leader->pid, SIGKILL);
    for (size_t i = 0; i < n; i++) {
        if (!others[i])
            continue;
        for (;;) {
            pid_t got = waitpid(others[i]->pid, &status, __WALL);
            if ((got < 0 && errno != EINTR) ||
                (got == others[i]->pid && (WIFEXITED(status) || WIFSIGNALED(status))))
                break;
        }
        inject_free(others[i]);
        others[i] = NULL;
    }
    mos_inject_kill(leader);
}
