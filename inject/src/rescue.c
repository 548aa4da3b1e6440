/* The rescue frame: if the injector dies, the task goes back to where it was seized.
 *
 * When a tracer dies the kernel lets its tracees run on from whatever registers they hold. In
 * the middle of an injected call those are the call's: the task would run on from the
 * instruction after the `syscall` with foreign registers and every signal blocked, and die
 * (or worse, run on wrongly). So while a task is held for injection it carries, just below
 * its red zone, the frame the kernel itself writes for a signal handler, holding the
 * registers, the signal mask and the FPU state of the seize. Injected calls run at a
 * `syscall; ret` of the task's own code with rsp on that frame, whose return address is the
 * task's rt_sigreturn trampoline; between calls the task is parked on the trampoline itself.
 * The tracer normally takes the task back at the call's exit stop, before the `ret`; if the
 * tracer is gone the `ret` (or the parked start) runs rt_sigreturn, which puts back exactly
 * what the frame holds. The frame's uc_stack is deliberately invalid: rt_sigreturn then
 * leaves the task's sigaltstack as it is.
 *
 * The kernel writes a signal frame in the same place at any time, so the program cannot rely
 * on these bytes; they are still put back before the task runs again or its memory is read
 * for an image. Written with process_vm_writev only, which respects protections: a frame
 * that would reach a guard page is not written and the task is held without rescue. */
#include "rescue.h"

#include "mos/procfs.h"
#include "mos/status.h"

#include <elf.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

/* The x86-64 kernel ABI of a signal frame (arch/x86/include/uapi/asm/sigcontext.h and
 * ucontext.h), spelled out here: glibc's own ucontext_t has a different, larger layout. */
struct k_sigcontext {
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
    uint16_t cs, gs, fs, ss;
    uint64_t err, trapno, oldmask, cr2;
    uint64_t fpstate;
    uint64_t reserved1[8];
};

struct k_stack {
    uint64_t ss_sp;
    int32_t ss_flags;
    int32_t pad;
    uint64_t ss_size;
};

struct k_ucontext {
    uint64_t uc_flags;
    uint64_t uc_link;
    struct k_stack uc_stack;
    struct k_sigcontext uc_mcontext;
    uint64_t uc_sigmask;
};

struct k_rt_sigframe {
    uint64_t pretcode;
    struct k_ucontext uc;
    uint8_t info[128];
};

_Static_assert(sizeof(struct k_sigcontext) == 256, "kernel sigcontext is 256 bytes");
_Static_assert(sizeof(struct k_ucontext) == 304, "kernel ucontext is 304 bytes");

#define UC_FP_XSTATE 0x1
#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
#define FP_XSTATE_MAGIC1 0x46505853u
#define FP_XSTATE_MAGIC2 0x46505845u
#define FX_SW_BYTES_OFF 464 /* struct _fpx_sw_bytes in the fxsave area's software bytes */
#define RED_ZONE 128
#define XSTATE_MAX 16384
#define SCAN_MAX (64u << 20) /* bytes of code looked through at most in one search */

static const uint8_t call_code[] = {0x0f, 0x05, 0xc3};
static const uint8_t sigreturn_code[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};

/* Where each piece was last found, as a place in a file: every process mapping the same libc
 * has it at the same file offset, so a daemon scans once per library, not once per process.
 * Shared by all threads of the injector; a hit is always checked by reading the bytes. */
struct file_site {
    uint32_t dev_major, dev_minor;
    uint64_t inode, offset; /* inode 0: nothing known */
};

static struct {
    pthread_mutex_t lock;
    struct file_site call, sigreturn;
} known = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The last process's sites, so its other threads need no maps read: the threads of one process
 * are seized one after another. Its start time goes with the pid, which may name another
 * process by now. */
static _Thread_local struct {
    pid_t tgid;
    unsigned long long start;
    struct rescue_sites sites;
} last_process;

static int code_at(pid_t pid, uint64_t addr, const uint8_t *code, size_t len)
{
    uint8_t buf[16];
    struct iovec local = {buf, len}, remote = {(void *)addr, len};

    return addr && process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len &&
           memcmp(buf, code, len) == 0;
}

static int vma_holds(const struct mos_vma *v, const struct file_site *fs)
{
    return fs->inode != 0 && (v->prot & PROT_EXEC) && v->inode == fs->inode &&
           v->dev_major == fs->dev_major && v->dev_minor == fs->dev_minor &&
           fs->offset >= v->offset && fs->offset - v->offset < v->end - v->start;
}

/* The address of a known file site in this process, checked, or 0. */
static uint64_t known_find(pid_t pid, const struct mos_vma_list *list, const struct file_site *fs,
                           const uint8_t *code, size_t len)
{
    for (size_t i = 0; i < list->count; i++) {
        const struct mos_vma *v = &list->vmas[i];
        uint64_t addr = v->start + (fs->offset - v->offset);
        if (vma_holds(v, fs) && code_at(pid, addr, code, len))
            return addr;
    }
    return 0;
}

static void known_note(const struct mos_vma *v, uint64_t addr, struct file_site *fs)
{
    if (v->inode == 0) /* the vDSO or anonymous code: no file to name it by */
        return;
    *fs = (struct file_site){v->dev_major, v->dev_minor, v->inode, v->offset + (addr - v->start)};
}

static uint64_t find_code(const uint8_t *buf, size_t len, uint64_t base, const uint8_t *code,
                          size_t clen)
{
    const uint8_t *p = memmem(buf, len, code, clen);

    return p ? base + (uint64_t)(p - buf) : 0;
}

/* Look through one executable mapping for whatever is still missing. Small chunks: libc's
 * pieces sit in its first few hundred KiB, and each chunk is a copy out of the task. */
static void scan_vma(pid_t pid, const struct mos_vma *v, struct rescue_sites *s, uint8_t *buf,
                     size_t chunk, size_t *budget)
{
    for (uint64_t at = v->start; at < v->end && *budget > 0 && !(s->call && s->sigreturn);
         at += chunk) {
        size_t len = v->end - at < chunk + 16 ? v->end - at : chunk + 16;
        struct iovec local = {buf, len}, remote = {(void *)at, len};
        if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)len)
            break;
        if (!s->call && (s->call = find_code(buf, len, at, call_code, sizeof(call_code))))
            known_note(v, s->call, &known.call);
        if (!s->sigreturn &&
            (s->sigreturn = find_code(buf, len, at, sigreturn_code, sizeof(sigreturn_code))))
            known_note(v, s->sigreturn, &known.sigreturn);
        *budget = *budget > len ? *budget - len : 0;
    }
}

static int vma_rank(const struct mos_vma *v)
{
    if (!(v->prot & PROT_EXEC))
        return -1;
    if (strcmp(v->path, "[vdso]") == 0)
        return 0;
    return strstr(v->path, "/libc") ? 1 : 2;
}

static void sites_scan(pid_t pid, const struct mos_vma_list *list, struct rescue_sites *s)
{
    const size_t chunk = 64u << 10;
    size_t budget = SCAN_MAX;
    uint8_t *buf = malloc(chunk + 16);

    for (int rank = 0; buf && rank <= 2; rank++)
        for (size_t i = 0; i < list->count && !(s->call && s->sigreturn); i++)
            if (vma_rank(&list->vmas[i]) == rank)
                scan_vma(pid, &list->vmas[i], s, buf, chunk, &budget);
    free(buf);
}

/* The sites of a process we already know, checked by reading their bytes again. */
static int last_process_is(pid_t tgid, unsigned long long start, pid_t pid)
{
    return last_process.tgid == tgid && last_process.start == start &&
           code_at(pid, last_process.sites.call, call_code, sizeof(call_code)) &&
           code_at(pid, last_process.sites.sigreturn, sigreturn_code, sizeof(sigreturn_code));
}

static int sites_lookup(pid_t pid, struct rescue_sites *out)
{
    struct mos_vma_list list;
    int rc = mos_vma_list_read(pid, &list);

    if (rc != 0)
        return rc;
    pthread_mutex_lock(&known.lock);
    out->call = known_find(pid, &list, &known.call, call_code, sizeof(call_code));
    out->sigreturn = known_find(pid, &list, &known.sigreturn, sigreturn_code,
                                sizeof(sigreturn_code));
    if (!(out->call && out->sigreturn))
        sites_scan(pid, &list, out);
    pthread_mutex_unlock(&known.lock);
    mos_vma_list_free(&list);
    return out->call && out->sigreturn ? 0 : -ENOENT;
}

int rescue_sites_find(pid_t pid, struct rescue_sites *out)
{
    char features[64] = "", tgid_text[64] = "";
    const char *const keys[] = {"x86_Thread_features:", "Tgid:"};
    char *const vals[] = {features, tgid_text};
    struct mos_proc_stat st;
    int rc = mos_proc_status_texts(pid, keys, vals, 2, sizeof(tgid_text));

    if (rc < 0)
        return rc;
    if (strstr(features, "shstk"))
        return -EOPNOTSUPP;
    pid_t tgid = (pid_t)atoi(tgid_text);
    if (tgid <= 0)
        return -ENOENT;
    if ((rc = mos_proc_stat_read(tgid, &st)) != 0)
        return rc;
    if (last_process_is(tgid, st.f[MOS_STAT_STARTTIME], pid)) {
        *out = last_process.sites;
        return 0;
    }
    if ((rc = sites_lookup(pid, out)) == 0) {
        last_process.tgid = tgid;
        last_process.start = st.f[MOS_STAT_STARTTIME];
        last_process.sites = *out;
    }
    return rc;
}

static void sigcontext_fill(struct k_sigcontext *sc, const struct user_regs_struct *r)
{
    sc->r8 = r->r8, sc->r9 = r->r9, sc->r10 = r->r10, sc->r11 = r->r11;
    sc->r12 = r->r12, sc->r13 = r->r13, sc->r14 = r->r14, sc->r15 = r->r15;
    sc->rdi = r->rdi, sc->rsi = r->rsi, sc->rbp = r->rbp, sc->rbx = r->rbx;
    sc->rdx = r->rdx, sc->rax = r->rax, sc->rcx = r->rcx, sc->rsp = r->rsp;
    sc->rip = r->rip, sc->eflags = r->eflags;
    sc->cs = (uint16_t)r->cs, sc->ss = (uint16_t)r->ss;
}

/* The frame image: the rt_sigframe at 0, the xstate (as PTRACE_GETREGSET gives it, software
 * bytes included) 64-byte aligned after it, FP_XSTATE_MAGIC2 after the xstate. */
static int frame_build(pid_t pid, const struct user_regs_struct *regs, uint64_t mask,
                       uint64_t sigreturn, uint8_t **image, struct rescue_frame *f)
{
    uint8_t *x = aligned_alloc(64, XSTATE_MAX);
    struct iovec iov = {x, XSTATE_MAX};
    uint32_t sw[2];

    if (!x)
        return -ENOMEM;
    if (ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &iov) < 0 ||
        iov.iov_len < 512 + 64) { /* the legacy area and the xsave header at least */
        free(x);
        return -EOPNOTSUPP;
    }
    /* ptrace gives XCR0 in the software bytes (as gdb reads them); a signal frame has the
     * kernel's struct _fpx_sw_bytes there, which says how much xstate follows */
    uint64_t xcr0;
    uint32_t xsize = (uint32_t)iov.iov_len;
    memcpy(&xcr0, x + FX_SW_BYTES_OFF, sizeof(xcr0));
    if (xsize + 4 > XSTATE_MAX || !(xcr0 & 3)) {
        free(x);
        return -EOPNOTSUPP;
    }
    memset(x + FX_SW_BYTES_OFF, 0, 48);
    sw[0] = FP_XSTATE_MAGIC1;
    sw[1] = xsize + 4; /* extended_size: the xstate and MAGIC2 */
    memcpy(x + FX_SW_BYTES_OFF, sw, 8);
    memcpy(x + FX_SW_BYTES_OFF + 8, &xcr0, sizeof(xcr0));
    memcpy(x + FX_SW_BYTES_OFF + 16, &xsize, sizeof(xsize));
    uint64_t top = regs->rsp - RED_ZONE;
    uint64_t fp = (top - (xsize + 4)) & ~63ull;
    uint64_t addr = (fp - sizeof(struct k_rt_sigframe)) & ~15ull;
    size_t len = (size_t)(top - addr);
    uint8_t *img = calloc(1, len);
    if (!img) {
        free(x);
        return -ENOMEM;
    }
    struct k_rt_sigframe fr = {.pretcode = sigreturn};
    fr.uc.uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
    fr.uc.uc_stack.ss_flags = 3; /* neither 0, SS_ONSTACK nor SS_DISABLE: left unchanged */
    sigcontext_fill(&fr.uc.uc_mcontext, regs);
    fr.uc.uc_mcontext.fpstate = fp;
    fr.uc.uc_sigmask = mask;
    memcpy(img, &fr, sizeof(fr));
    memcpy(img + (fp - addr), x, xsize);
    const uint32_t magic2 = FP_XSTATE_MAGIC2;
    memcpy(img + (fp - addr) + xsize, &magic2, sizeof(magic2));
    free(x);
    *image = img;
    f->addr = addr;
    f->len = len;
    return 0;
}

int rescue_frame_place(pid_t pid, const struct user_regs_struct *regs, uint64_t mask,
                       uint64_t sigreturn, struct rescue_frame *f)
{
    uint8_t *img = NULL;
    int rc = frame_build(pid, regs, mask, sigreturn, &img, f);

    if (rc != 0)
        return rc;
    f->saved = malloc(f->len);
    struct iovec remote = {(void *)f->addr, f->len};
    struct iovec keep = {f->saved, f->len}, put = {img, f->len};
    ssize_t n = 0;
    if (!f->saved)
        rc = -ENOMEM;
    else if (process_vm_readv(pid, &keep, 1, &remote, 1, 0) != (ssize_t)f->len)
        rc = -EFAULT;
    else if ((n = process_vm_writev(pid, &put, 1, &remote, 1, 0)) != (ssize_t)f->len) {
        rc = -EFAULT;
        if (n > 0) { /* cut short at a page it may not write: put back what it did write */
            keep.iov_len = remote.iov_len = (size_t)n;
            process_vm_writev(pid, &keep, 1, &remote, 1, 0);
        }
    }
    free(img);
    if (rc != 0)
        rescue_frame_drop(f);
    return rc;
}

int rescue_frame_remove(pid_t pid, struct rescue_frame *f)
{
    struct iovec local = {f->saved, f->len}, remote = {(void *)f->addr, f->len};
    int rc = 0;

    if (f->saved && process_vm_writev(pid, &local, 1, &remote, 1, 0) != (ssize_t)f->len)
        rc = mos_errno_status();
    rescue_frame_drop(f);
    return rc;
}

void rescue_frame_drop(struct rescue_frame *f)
{
    free(f->saved);
    memset(f, 0, sizeof(*f));
}
