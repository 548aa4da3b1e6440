/* A job is a process, not a bare pid: the identity read from /proc at registration, compared
 * before every freeze (mos_ident_compare), refuses a pid reused by another process, a new
 * parent, any uid or gid field not the owner's, capabilities, a set-id program and a process
 * that is not dumpable. Live: a child that ends, one that makes itself non-dumpable, and (as
 * root) one that execs a set-uid copy of sleep, which mos_dump_freeze must refuse untouched. */
#include "image_template.h"
#include "precopy.h"
#include "mos/migrate.h"
#include "mos/procfs.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static const char status_text[] =
    "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\n"
    "PPid:\t4200\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\n"
    "Gid:\t100\t100\t100\t100\nGroups:\t100 27\nCapInh:\t0000000000000000\n"
    "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\n"
    "CapAmb:\t0000000000000000\nNoNewPrivs:\t0\n";
static const char stat_text[] =
    "4242 (sle) (ep)) S 4200 4242 4200 34816 4242 4194304 100 0 0 0 0 0 0 0 20 0 1 0 "
    "987654 2000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 "
    "0 0 0 0 0";

static void plain(struct mos_proc_ident *id)
{
    assert_int_equal(mos_proc_ident_parse(status_text, stat_text, id), 0);
    id->status_uid = 1000;
}

static void test_parse(void **state)
{
    struct mos_proc_ident id;

    (void)state;
    assert_int_equal(mos_proc_ident_parse(status_text, stat_text, &id), 0);
    assert_int_equal(id.uid[MOS_ID_EFFECTIVE], 1000);
    assert_int_equal(id.gid[MOS_ID_FS], 100);
    assert_int_equal(id.ppid, 4200);
    assert_int_equal(id.start_time, 987654);
    assert_int_equal(id.cap_eff, 0);
    char bad[sizeof(status_text) + 16];
    /* one field short, a field missing, a number that is not one: refused */
    const char *const cuts[][2] = {{"Uid:\t1000\t1000\t1000\t1000", "Uid:\t1000\t1000\t1000"},
                                   {"CapAmb:", "CapXmb:"},
                                   {"Gid:\t100", "Gid:\tx00"},
                                   {"PPid:\t4200", "PPid:\t-1"},
                                   {"CapEff:\t0", "CapEff:\tz"}};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        const char *at = strstr(status_text, cuts[i][0]);
        assert_non_null(at);
        snprintf(bad, sizeof(bad), "%.*s%s%s", (int)(at - status_text), status_text, cuts[i][1],
                 at + strlen(cuts[i][0]));
        assert_int_equal(mos_proc_ident_parse(bad, stat_text, &id), MOS_E_PROTO);
    }
    assert_int_equal(mos_proc_ident_parse(status_text, "4242 (x) S 1", &id), MOS_E_PROTO);
}

/* One change to a plain user's process, and the word the refusal must hold. */
static void refused(void (*change)(struct mos_proc_ident *), const char *word)
{
    struct mos_proc_ident reg, now;
    char why[256] = "";

    plain(&reg);
    plain(&now);
    assert_int_equal(mos_ident_compare(&reg, &now, 1000, 100, why, sizeof(why)), 0);
    change(&now);
    assert_int_equal(mos_ident_compare(&reg, &now, 1000, 100, why, sizeof(why)),
                     MOS_E_NOT_MIGRATABLE);
    if (!strstr(why, word))
        fail_msg("reason '%s' does not say '%s'", why, word);
}

static void reused(struct mos_proc_ident *id) { id->start_time++; }
static void reparented(struct mos_proc_ident *id) { id->ppid = 1; }
static void setuid_root(struct mos_proc_ident *id) { id->uid[MOS_ID_EFFECTIVE] = 0; }
static void saved_uid(struct mos_proc_ident *id) { id->uid[MOS_ID_SAVED] = 0; }
static void fs_uid(struct mos_proc_ident *id) { id->uid[MOS_ID_FS] = 1001; }
static void set_gid(struct mos_proc_ident *id) { id->gid[MOS_ID_EFFECTIVE] = 42; }
static void cap_eff(struct mos_proc_ident *id) { id->cap_eff = 1ull << 21; }
static void cap_prm(struct mos_proc_ident *id) { id->cap_prm = 1; }
static void cap_amb(struct mos_proc_ident *id) { id->cap_amb = 1ull << 12; }
static void setid_exe(struct mos_proc_ident *id) { id->exe_setid = 1; }
static void undumpable(struct mos_proc_ident *id) { id->status_uid = 0; }
static void no_exe(struct mos_proc_ident *id) { id->exe_setid = -1; }

static void test_compare(void **state)
{
    (void)state;
    refused(reused, "pid was reused");
    refused(reparented, "new parent");
    refused(setuid_root, "uids 1000/0/1000/1000");
    refused(saved_uid, "uids");
    refused(fs_uid, "uids");
    refused(set_gid, "gids");
    refused(cap_eff, "capabilities");
    refused(cap_prm, "capabilities");
    refused(cap_amb, "capabilities");
    refused(setid_exe, "set-uid or set-gid program");
    refused(undumpable, "not dumpable");
    refused(no_exe, "no program to inspect");
}

static void test_root_job(void **state)
{
    struct mos_proc_ident reg, now;
    char why[256];

    (void)state;
    plain(&reg);
    for (int i = 0; i < MOS_ID_FIELDS; i++)
        reg.uid[i] = reg.gid[i] = 0;
    reg.cap_eff = reg.cap_prm = ~0ull >> 23;
    reg.status_uid = 0;
    now = reg;
    /* root gains nothing from capabilities; the process must still be the same one */
    assert_int_equal(mos_ident_compare(&reg, &now, 0, 0, why, sizeof(why)), 0);
    now.start_time++;
    assert_int_equal(mos_ident_compare(&reg, &now, 0, 0, why, sizeof(why)),
                     MOS_E_NOT_MIGRATABLE);
}

/* ---- live processes ---------------------------------------------------------------------- */

struct held {
    pid_t pid;
    int pidfd;
    struct mos_proc_ident id;
    struct mos_job_owner owner;
};

static void hold(pid_t pid, uid_t uid, gid_t gid, struct held *h)
{
    h->pid = pid;
    h->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    assert_true(h->pidfd >= 0);
    assert_int_equal(mos_proc_ident_read(pid, &h->id), 0);
    h->owner = (struct mos_job_owner){.registered = &h->id, .pidfd = h->pidfd, .uid = uid,
                                      .gid = gid};
}

/* A child process we drive by steps: it says "r" when it runs as who (uid, gid), then each
 * byte we send is a step it takes and acknowledges. */
struct kid {
    pid_t pid;
    int to, from;
    uid_t uid;
    gid_t gid;
};

static void kid_step(struct kid *k, char step)
{
    char c;
    assert_int_equal(write(k->to, &step, 1), 1);
    assert_int_equal(read(k->from, &c, 1), 1);
}

/* Steps: 'u' PR_SET_DUMPABLE 0; 'x' exec prog (no acknowledgement: watch /proc/PID/exe). As
 * root, the child drops to nobody first: root's own processes are not what this is about. */
static void kid_start(struct kid *k, const char *prog)
{
    int down[2], up[2];
    struct passwd *pw = getuid() == 0 ? getpwnam("nobody") : NULL;

    k->uid = pw ? pw->pw_uid : getuid();
    k->gid = pw ? pw->pw_gid : getgid();
    assert_int_equal(pipe2(down, O_CLOEXEC), 0);
    assert_int_equal(pipe2(up, O_CLOEXEC), 0);
    k->pid = fork();
    assert_true(k->pid >= 0);
    if (k->pid == 0) {
        char step;
        close(down[1]);
        close(up[0]);
        if (pw && (setgroups(0, NULL) || setresgid(k->gid, k->gid, k->gid) ||
                   setresuid(k->uid, k->uid, k->uid) ||
                   /* dumpable again, as an exec after the change would make it */
                   prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)))
            _exit(1);
        if (write(up[1], "r", 1) != 1)
            _exit(1);
        while (read(down[0], &step, 1) == 1) {
            if (step == 'u')
                prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
            if (step == 'x')
                execl(prog, "sleep", "60", (char *)NULL);
            if (write(up[1], &step, 1) != 1)
                _exit(1);
        }
        _exit(0);
    }
    close(down[0]);
    close(up[1]);
    k->to = down[1];
    k->from = up[0];
    char c;
    assert_int_equal(read(k->from, &c, 1), 1);
}

static void kid_end(struct kid *k, struct held *h)
{
    kill(k->pid, SIGKILL);
    waitpid(k->pid, NULL, 0);
    close(k->to);
    close(k->from);
    if (h)
        close(h->pidfd);
}

static void test_live_same_and_ended(void **state)
{
    struct kid k;
    struct held h;
    char why[256];

    (void)state;
    kid_start(&k, NULL);
    hold(k.pid, k.uid, k.gid, &h);
    assert_int_equal(mos_migrate_owner_check(k.pid, &h.owner, why, sizeof(why)), 0);
    kill(k.pid, SIGKILL);
    waitpid(k.pid, NULL, 0);
    assert_int_equal(mos_migrate_owner_check(k.pid, &h.owner, why, sizeof(why)),
                     MOS_E_NOT_MIGRATABLE);
    assert_non_null(strstr(why, "ended"));
    k.pid = 0; /* reaped: nothing to kill */
    close(k.to);
    close(k.from);
    close(h.pidfd);
}

static void test_live_undumpable(void **state)
{
    struct kid k;
    struct held h;
    char why[256];

    (void)state;
    kid_start(&k, NULL);
    hold(k.pid, k.uid, k.gid, &h);
    kid_step(&k, 'u');
    assert_int_equal(mos_migrate_owner_check(k.pid, &h.owner, why, sizeof(why)),
                     MOS_E_NOT_MIGRATABLE);
    if (k.uid != 0 && !strstr(why, "not dumpable"))
        fail_msg("reason: %s", why);
    kid_end(&k, &h);
}

/* A set-uid-root copy of sleep in a fresh directory (root only: said, not hidden, else). */
static int setuid_sleep_make(char *dir, char *prog, size_t len)
{
    char cmd[160];

    if (getuid() != 0 || !getpwnam("nobody")) {
        print_message("not root (or no user nobody): cannot make a set-uid program; the "
                      "comparison is covered by test_compare only\n");
        return -1;
    }
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, 0755), 0);
    snprintf(prog, len, "%s/sleep", dir);
    snprintf(cmd, sizeof(cmd), "cp /bin/sleep %s && chmod 4755 %s", prog, prog);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* The kid execs prog: wait until /proc says so (generous: a loaded machine). */
static void kid_exec(struct kid *k, const char *prog)
{
    char exe[64] = "", path[64];

    assert_int_equal(write(k->to, "x", 1), 1);
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)k->pid);
    for (int i = 0; i < 3000 && strcmp(exe, prog) != 0; i++) {
        ssize_t n = readlink(path, exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = '\0';
        struct timespec ms = {0, 10 * 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    assert_string_equal(exe, prog);
}

/* Refused, and untouched: alive, not traced, not stopped. */
static void kid_untouched(const struct kid *k, const struct held *h)
{
    char cmd[160];
    struct mos_proc_stat st;

    assert_int_equal(syscall(SYS_pidfd_send_signal, h->pidfd, 0, NULL, 0), 0);
    snprintf(cmd, sizeof(cmd), "grep -q '^TracerPid:[[:space:]]*0$' /proc/%d/status", (int)k->pid);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(mos_proc_stat_read(k->pid, &st), 0);
    assert_true(st.state == 'S' || st.state == 'R');
}

/* A registered child running as nobody execs a set-uid-root copy of sleep: the check refuses
 * it, and so does a freeze, which leaves it untraced and running. */
static void test_live_setuid_exec(void **state)
{
    char dir[] = "/tmp/mos-owner-XXXXXX", prog[64], why[256];
    struct kid k;
    struct held h;

    (void)state;
    if (setuid_sleep_make(dir, prog, sizeof(prog)) != 0)
        return;
    kid_start(&k, prog);
    hold(k.pid, k.uid, k.gid, &h);
    assert_int_equal(mos_migrate_owner_check(k.pid, &h.owner, why, sizeof(why)), 0);
    kid_exec(&k, prog);
    assert_int_equal(mos_migrate_owner_check(k.pid, &h.owner, why, sizeof(why)),
                     MOS_E_NOT_MIGRATABLE);
    if (!strstr(why, "uids 65534/0/0/0"))
        fail_msg("reason: %s", why);
    struct mos_dump_opts opts = {.fds_at_home = 1, .owner = &h.owner};
    struct mos_dump *d = NULL;
    assert_int_equal(mos_dump_freeze(k.pid, &opts, &d), MOS_E_NOT_MIGRATABLE);
    assert_null(d);
    kid_untouched(&k, &h);
    kid_end(&k, &h);
    unlink(prog);
    rmdir(dir);
}

/* Live pre-copy started on the user's process, which then execs a set-uid-root program: the
 * rounds send nothing of the new program's memory (tracking and pagemap belong to the old
 * memory, and each read is followed by the owner check), the freeze is refused, the process
 * runs on untouched. */
static void test_live_precopy_setuid_exec(void **state)
{
    char dir[] = "/tmp/mos-owner-XXXXXX", prog[64];
    struct kid k;
    struct held h;
    struct mos_precopy *p = NULL;
    struct membuf mb = {.io = {.ops = &mem_ops}};

    (void)state;
    if (setuid_sleep_make(dir, prog, sizeof(prog)) != 0)
        return;
    kid_start(&k, prog);
    hold(k.pid, k.uid, k.gid, &h);
    struct mos_dump_opts opts = {.fds_at_home = 1, .owner = &h.owner, .live = 1};
    assert_int_equal(mos_precopy_start(k.pid, &opts, &p), 0);
    if (!p)
        print_message("no live pre-copy on this kernel (before 6.7?): the exec is checked by "
                      "the freeze alone\n");
    kid_exec(&k, prog);
    int rc = p ? mos_precopy_rounds(p, &mb.io) : 0;
    assert_true(rc == 0 || rc == MOS_E_NOT_MIGRATABLE);
    assert_int_equal(mb.len, 0);
    mos_precopy_end(p, NULL);
    struct mos_dump *d = NULL;
    assert_int_equal(mos_dump_freeze(k.pid, &opts, &d), MOS_E_NOT_MIGRATABLE);
    kid_untouched(&k, &h);
    kid_end(&k, &h);
    free(mb.data);
    unlink(prog);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_root_job),
        cmocka_unit_test(test_live_same_and_ended),
        cmocka_unit_test(test_live_undumpable),
        cmocka_unit_test(test_live_setuid_exec),
        cmocka_unit_test(test_live_precopy_setuid_exec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
