/* The guest's seccomp filter, generated from the syscall table: local calls are allowed in BPF
 * (no round trip), everything else goes to the supervisor as a user notification. */
#include "forward_priv.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

#define X32_SYSCALL_BIT 0x40000000u
#define MAX_INSNS 256

struct bpf_builder {
    struct sock_filter insns[MAX_INSNS];
    unsigned n;
};

static unsigned emit(struct bpf_builder *b, struct sock_filter insn)
{
    if (b->n < MAX_INSNS)
        b->insns[b->n] = insn;
    return b->n++;
}

/* Point the true branch of the jump at index `at` to instruction `target`. */
static void patch_jt(struct bpf_builder *b, unsigned at, unsigned target)
{
    b->insns[at].jt = (uint8_t)(target - at - 1);
}

static void patch_jf(struct bpf_builder *b, unsigned at, unsigned target)
{
    b->insns[at].jf = (uint8_t)(target - at - 1);
}

static int filter_build(struct bpf_builder *b)
{
    unsigned allow_jumps[FWD_SYSCALL_MAX], n_allow = 0;
    unsigned arch_jump, x32_jump, mmap_jump, anon_jump, clone_jump, clone3_jump, thread_jump;

    b->n = 0;
    emit(b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                         offsetof(struct seccomp_data, arch)));
    arch_jump = emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                     AUDIT_ARCH_X86_64, 0, 0));
    emit(b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                         offsetof(struct seccomp_data, nr)));
    x32_jump = emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT,
                                                    0, 0));
    for (long nr = 0; nr < FWD_SYSCALL_MAX; nr++)
        if (mos_syscall_class(nr) == MOS_SYS_LOCAL)
            allow_jumps[n_allow++] = emit(
                b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 0));
    /* A thread is created where the job runs: clone with CLONE_THREAD is local, any other clone
     * (fork, vfork, a new process) takes the job home. BPF cannot read clone3's struct, so
     * clone3 fails with ENOSYS, and glibc falls back to clone, whose flags are argument 0. */
    clone_jump = emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 0));
    clone3_jump = emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0,
                                                       0));
    /* prctl(PR_GET_TID_ADDRESS) reads the thread's own clear_child_tid: local. A move injects
     * it into every thread it captures while their supervisor (the capturer) serves nothing,
     * so it must never wait for one. Other prctl options are the table's (home). */
    unsigned prctl_jump = emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                               SYS_prctl, 0, 0));
    /* Anonymous mmap is local; a file mapping needs the file, which is at home. */
    mmap_jump = emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 0));
    unsigned notify = emit(b, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                                           SECCOMP_RET_USER_NOTIF));
    unsigned mmap_check = emit(
        b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                        offsetof(struct seccomp_data, args[3])));
    anon_jump = emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MAP_ANONYMOUS,
                                                     0, 0));
    unsigned notify2 = emit(b, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                                            SECCOMP_RET_USER_NOTIF));
    unsigned clone_check = emit(
        b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                        offsetof(struct seccomp_data, args[0])));
    thread_jump = emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD,
                                                       0, 0));
    unsigned notify3 = emit(b, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                                            SECCOMP_RET_USER_NOTIF));
    unsigned prctl_check = emit(
        b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                        offsetof(struct seccomp_data, args[0])));
    unsigned tid_addr_jump = emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                                  PR_GET_TID_ADDRESS, 0, 0));
    unsigned notify4 = emit(b, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                                            SECCOMP_RET_USER_NOTIF));
    unsigned enosys = emit(b, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                                           SECCOMP_RET_ERRNO | ENOSYS));
    unsigned allow = emit(b, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    unsigned kill = emit(b, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                                         SECCOMP_RET_KILL_PROCESS));
    if (b->n > MAX_INSNS || kill - arch_jump > 255)
        return -E2BIG;

    patch_jt(b, arch_jump, arch_jump + 1);
    patch_jf(b, arch_jump, kill);
    patch_jt(b, x32_jump, kill);
    patch_jf(b, x32_jump, x32_jump + 1);
    for (unsigned i = 0; i < n_allow; i++) {
        patch_jt(b, allow_jumps[i], allow);
        patch_jf(b, allow_jumps[i], allow_jumps[i] + 1);
    }
    patch_jt(b, clone_jump, clone_check);
    patch_jf(b, clone_jump, clone3_jump);
    patch_jt(b, clone3_jump, enosys);
    patch_jf(b, clone3_jump, prctl_jump);
    patch_jt(b, prctl_jump, prctl_check);
    patch_jf(b, prctl_jump, mmap_jump);
    patch_jt(b, tid_addr_jump, allow);
    patch_jf(b, tid_addr_jump, notify4);
    patch_jt(b, thread_jump, allow);
    patch_jf(b, thread_jump, notify3);
    patch_jt(b, mmap_jump, mmap_check);
    patch_jf(b, mmap_jump, notify);
    patch_jt(b, anon_jump, allow);
    patch_jf(b, anon_jump, notify2);
    return 0;
}

static unsigned long filter_flags(void)
{
    return SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
}

int mos_guest_filter_program(struct sock_filter *insns, unsigned max, unsigned long *flags)
{
    struct bpf_builder b;
    int rc = filter_build(&b);

    if (rc != 0)
        return rc;
    if (b.n > max)
        return -E2BIG;
    memcpy(insns, b.insns, b.n * sizeof(insns[0]));
    *flags = filter_flags();
    return (int)b.n;
}

int mos_guest_filter_install(void)
{
    struct bpf_builder b;
    struct sock_fprog prog;
    int fd, rc;

    rc = filter_build(&b);
    if (rc != 0)
        return rc;
    prog.len = (unsigned short)b.n;
    prog.filter = b.insns;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return mos_errno_status();
    /* WAIT_KILLABLE_RECV: once the supervisor has taken a call, only a fatal signal may cut the
     * wait short. Otherwise a local signal could abandon a call the deputy is already
     * executing, and the restarted call would run twice at home (a write written twice). Home
     * signals still interrupt: the deputy's call returns EINTR and the supervisor replies
     * -ERESTARTSYS after queueing the signal, so the kernel restarts or fails the call as it
     * would natively. */
    fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, filter_flags(), &prog);
    if (fd < 0)
        return mos_errno_status();
    return fd;
}
