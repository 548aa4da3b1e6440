/* mos-husk: the empty shell a process is restored into.
 *
 * Built static, without libc, so its address space is a few pages of code, a stack and the
 * vDSO: nothing registered with the kernel (no rseq, no robust list, no handlers) that could
 * outlive the address space the supervisor tears down. The supervisor starts it under
 * PTRACE_TRACEME, so it stops at its exec before running one instruction; all further work is
 * done by injected system calls. Should it ever run on its own it just waits. */
void _start(void) __attribute__((noreturn, used));

void _start(void)
{
    for (;;)
        __asm__ volatile("syscall" : : "a"(34 /* pause */) : "rcx", "r11", "memory");
}
