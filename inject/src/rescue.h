/* The rescue frame (private to inject/): what lets a task we hold carry on as it was seized if
 * we die in the middle of an injection. See rescue.c for how it works and why. */
#ifndef MOS_INJECT_RESCUE_H
#define MOS_INJECT_RESCUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

/* Two pieces of the task's own code: a `syscall; ret` (where injected calls run) and a
 * `mov $15, %rax; syscall` (rt_sigreturn: the signal trampoline every libc carries). */
struct rescue_sites {
    uint64_t call;
    uint64_t sigreturn;
};

/* Find both in the task's executable mappings (the vDSO first, then libc, then the rest).
 * 0, -ENOENT (a piece is missing), -EOPNOTSUPP (the task uses a shadow stack, which an
 * rt_sigreturn of ours would not match), or -errno. */
int rescue_sites_find(pid_t pid, struct rescue_sites *out);

/* A signal frame below the red zone of the task's stack: on rt_sigreturn it gives back regs,
 * mask and the task's FPU/vector state. The bytes it covers are kept to be put back. */
struct rescue_frame {
    uint64_t addr; /* the frame (its return-address slot); the task's rsp during a call */
    size_t len;
    void *saved;
};

/* Write the frame into the stopped task. 0 or -errno (no room, no xstate...). */
int rescue_frame_place(pid_t pid, const struct user_regs_struct *regs, uint64_t mask,
                       uint64_t sigreturn, struct rescue_frame *f);
/* Put the covered bytes back and forget the frame. 0 or -errno. */
int rescue_frame_remove(pid_t pid, struct rescue_frame *f);
/* Forget it without touching the task (gone, or its address space replaced). */
void rescue_frame_drop(struct rescue_frame *f);

#endif
