/* Signals: handlers (one on an alternate stack), a pending alarm, a blocked signal that is
 * pending across the migration, and the mask. */
#include "zdtm.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t alarms, usr2s, on_alt;
static char altstack[65536];

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static void on_usr2(int sig)
{
    (void)sig;
    char here;
    usr2s++;
    on_alt = &here >= altstack && &here < altstack + sizeof(altstack);
}

int main(void)
{
    int steps = zdtm_env("ZDTM_STEPS", 30), ms = zdtm_env("ZDTM_STEP_MS", 25);
    struct sigaction sa = {.sa_handler = on_alarm};
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
    sigset_t block;

    signal(SIGPIPE, SIG_DFL); /* must come back as the default, whatever the restorer has */
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR2, &sa, NULL);
    signal(SIGUSR1, SIG_IGN);
    sigaltstack(&ss, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, NULL);
    raise(SIGUSR2); /* stays pending while blocked */
    alarm(2);       /* fires after the migration */
    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        zdtm_say("step %d usr2 %d", s, (int)usr2s);
        zdtm_sleep_ms(ms);
    }
    sigset_t pend;
    sigpending(&pend);
    int was_pending = sigismember(&pend, SIGUSR2);
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    while (!alarms)
        pause();
    struct sigaction now, pipe_now;
    sigaction(SIGUSR1, NULL, &now);
    sigaction(SIGPIPE, NULL, &pipe_now);
    zdtm_say("pending %d usr2 %d on alt stack %d alarms %d usr1 ignored %d pipe default %d",
             was_pending, (int)usr2s, (int)on_alt, (int)alarms, now.sa_handler == SIG_IGN,
             pipe_now.sa_handler == SIG_DFL);
    return zdtm_result(was_pending && usr2s == 1 && on_alt && alarms == 1 &&
                           now.sa_handler == SIG_IGN && pipe_now.sa_handler == SIG_DFL,
                       "signal state lost");
}
