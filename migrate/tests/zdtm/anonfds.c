/* eventfd, signalfd, timerfd and epoll of the program's own (checkpoint mode): counters that
 * keep counting (one a semaphore), a signalfd that must still see the signal pending before
 * the dump, a periodic timer that keeps ticking, a one-shot timer still an hour away, a
 * disarmed one, a dup sharing an eventfd, an epoll set over an eventfd, the periodic timer
 * (edge-triggered) and the signalfd, with their data words. Output depends only on the
 * computation. */
#define _GNU_SOURCE
#include "zdtm.h"

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

int main(void)
{
    int steps = zdtm_env("ZDTM_STEPS", 30), ms = zdtm_env("ZDTM_STEP_MS", 25);
    int counter = eventfd(5, EFD_NONBLOCK), sem = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
    int counter2 = dup(counter);
    sigset_t mask;
    struct itimerspec tick = {{0, 20000000}, {0, 20000000}}, hour = {{0, 0}, {3600, 0}}, now;
    int periodic = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    int oneshot = timerfd_create(CLOCK_BOOTTIME, 0), idle = timerfd_create(CLOCK_REALTIME, 0);
    uint64_t v, total = 0;

    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK);
    if (counter < 0 || sem < 0 || counter2 < 0 || periodic < 0 || oneshot < 0 || idle < 0 ||
        sfd < 0 || timerfd_settime(periodic, 0, &tick, NULL) < 0 ||
        timerfd_settime(oneshot, 0, &hour, NULL) < 0)
        return zdtm_result(0, "making the fds");
    int ready = eventfd(1, 0), ep = epoll_create1(0);
    struct epoll_event evs[3] = {{.events = EPOLLIN, .data.u64 = 111},
                                 {.events = EPOLLIN | EPOLLET, .data.u64 = 222},
                                 {.events = EPOLLIN, .data.u64 = 333}};
    if (ready < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ready, &evs[0]) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, periodic, &evs[1]) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &evs[2]) < 0)
        return zdtm_result(0, "making the epoll set");
    raise(SIGUSR2); /* pending, blocked: for the signalfd */
    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        v = (uint64_t)s + 1;
        if (write(s % 2 ? counter2 : counter, &v, sizeof(v)) != sizeof(v))
            return zdtm_result(0, "add to the counter");
        ssize_t n = read(sem, &v, sizeof(v));
        zdtm_say("step %d: semaphore %s", s, n == sizeof(v) ? "taken" : "empty");
        if (s % 10 == 9) {
            if (read(counter, &v, sizeof(v)) != sizeof(v))
                return zdtm_result(0, "read the counter");
            total += v;
            zdtm_say("step %d: counter held %llu", s, (unsigned long long)v);
        }
        zdtm_sleep_ms(ms);
    }
    int seen = 0; /* bits: 111, 222, 333 reported ready; the timer ticks within 20 ms */
    for (int i = 0; i < 100 && seen != 7; i++) {
        struct epoll_event out[3];
        int n = epoll_wait(ep, out, 3, 20);
        for (int k = 0; k < n; k++)
            seen |= out[k].data.u64 == 111 ? 1 : out[k].data.u64 == 222 ? 2
                    : out[k].data.u64 == 333 ? 4 : 8;
    }
    zdtm_say("epoll reported: %s%s%s%s", seen & 1 ? "eventfd " : "", seen & 2 ? "timer " : "",
             seen & 4 ? "signalfd " : "", seen & 8 ? "unknown data" : "");
    struct signalfd_siginfo si;
    ssize_t got = read(sfd, &si, sizeof(si));
    int ticked = 0;
    for (int i = 0; i < 200 && !ticked; i++) { /* it ticks every 20 ms: wait for one */
        ticked = read(periodic, &v, sizeof(v)) == sizeof(v) && v > 0;
        if (!ticked)
            zdtm_sleep_ms(10);
    }
    timerfd_gettime(oneshot, &now);
    int hour_left = now.it_value.tv_sec > 3000 && now.it_value.tv_sec <= 3600;
    timerfd_gettime(idle, &now);
    int idle_ok = now.it_value.tv_sec == 0 && now.it_value.tv_nsec == 0;
    timerfd_gettime(periodic, &now);
    int period_ok = now.it_interval.tv_sec == 0 && now.it_interval.tv_nsec == 20000000;
    zdtm_say("signalfd read %s; periodic timer ticked %s, period kept %s; one-shot about an "
             "hour away %s; idle timer disarmed %s; counted %llu",
             got == sizeof(si) ? strsignal((int)si.ssi_signo) : "nothing", ticked ? "yes" : "no",
             period_ok ? "yes" : "no", hour_left ? "yes" : "no", idle_ok ? "yes" : "no",
             (unsigned long long)total);
    return zdtm_result(got == sizeof(si) && si.ssi_signo == SIGUSR2 && ticked && period_ok &&
                           hour_left && idle_ok && seen == 7,
                       "the fds' state after the steps");
}
