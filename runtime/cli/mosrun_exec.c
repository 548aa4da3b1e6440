/* mosrun -E: the program runs as an ordinary process on another node; mosrun stays here as
 * its stand-in. We listen for the exec link with a fresh token, ask our mosd to have the
 * target start it (mosd knows who we are and holds the cluster key; we do not), and then
 * relay stdin, stdout, stderr and signals until the program's exit status ends us the same
 * way (mos_exec_home_serve). */
#include "mosrun_exec.h"

#include "control.h"
#include "mos/exec_link.h"
#include "mos/forward.h"
#include "mos/key.h"
#include "mos/status.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TIMEOUT_MS 60000

static const int passed_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                                     SIGWINCH, SIGCONT, 0};

struct exec_home {
    const char *prog;
    int mosd_fd, listen_fd;
    struct mos_link link; /* fd -1 until the target proves the token */
    char addr[MOS_ADDR_MAX];
    char where[MOS_NODE_NAME_MAX];
    uint8_t token[MOS_LINK_TOKEN_BYTES];
};

/* One line on stderr, then exit with status. */
static void __attribute__((noreturn, format(printf, 2, 3))) fail(int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    exit(status);
}

static void connect_mosd(struct exec_home *h, const char *config)
{
    struct mos_config cfg;
    char path[108];
    int self, rc;

    if (mos_runtime_config(config, &cfg, &self) != 0)
        exit(1);
    rc = mos_control_socket_path(&cfg, self, path, sizeof(path));
    snprintf(h->addr, sizeof(h->addr), "%s", cfg.nodes[self].addr);
    mos_config_free(&cfg);
    h->mosd_fd = rc == 0 ? mos_control_connect(path) : rc;
    if (h->mosd_fd < 0)
        fail(1, "mosrun: no mosd on this node (%s): -E needs it to run %s elsewhere\n", path,
             h->prog);
}

static struct json_object *strings(char *const *v)
{
    struct json_object *a = json_object_new_array();

    for (; v && *v; v++)
        json_object_array_add(a, json_object_new_string(*v));
    return a;
}

static struct json_object *request(const struct exec_home *h, const char *target, long mem_mib,
                                   char **argv, int port)
{
    extern char **environ;
    struct json_object *req = json_object_new_object();
    char cwd[PATH_MAX], hex[2 * MOS_LINK_TOKEN_BYTES + 1];
    mode_t mask = umask(0);

    umask(mask);
    for (size_t i = 0; i < sizeof(h->token); i++)
        sprintf(hex + 2 * i, "%02x", h->token[i]);
    json_object_object_add(req, "op", json_object_new_string("exec_remote"));
    json_object_object_add(req, "target", json_object_new_string(target));
    if (mem_mib)
        json_object_object_add(req, "mem_mib", json_object_new_int64(mem_mib));
    json_object_object_add(req, "argv", strings(argv));
    json_object_object_add(req, "env", strings(environ));
    /* a deleted or unreachable cwd: the remote side uses the home directory */
    json_object_object_add(req, "cwd", json_object_new_string(getcwd(cwd, sizeof(cwd)) ? cwd : ""));
    json_object_object_add(req, "umask", json_object_new_int((int)mask));
    json_object_object_add(req, "port", json_object_new_int(port));
    json_object_object_add(req, "token", json_object_new_string(hex));
    return req;
}

/* mosd's answer and the target's link arrive in either order: the target connects the link
 * before it answers, and we must prove the token while mosd still waits for that answer. */
static void await_start(struct exec_home *h)
{
    struct json_object *resp = NULL;
    int answered = 0;

    for (int waited = 0; waited < START_TIMEOUT_MS && !(answered && h->link.fd >= 0);
         waited += 500) {
        struct pollfd p[2] = {{h->listen_fd, h->link.fd < 0 ? POLLIN : 0, 0},
                              {h->mosd_fd, answered ? 0 : POLLIN, 0}};
        if (poll(p, 2, 500) <= 0)
            continue;
        if (p[0].revents & POLLIN) {
            if (mos_deputy_link_accept(h->listen_fd, h->token, 10000, &h->link) != 0)
                h->link.fd = -1;
        }
        if (p[1].revents & (POLLIN | POLLHUP)) {
            if (mos_control_recv(h->mosd_fd, &resp, 5000) != 0)
                fail(1, "mosrun: mosd closed the connection before %s started\n", h->prog);
            if (!json_object_get_boolean(json_object_object_get(resp, "ok")))
                fail(1, "mosrun: cannot run %s remotely: %s\n", h->prog,
                     mos_json_str(resp, "error", "?"));
            snprintf(h->where, sizeof(h->where), "%s", mos_json_str(resp, "where", "?"));
            json_object_put(resp);
            answered = 1;
        }
    }
    if (!answered)
        fail(1, "mosrun: no answer from mosd within %d s; %s did not start\n",
             START_TIMEOUT_MS / 1000, h->prog);
    if (h->link.fd < 0)
        fail(MOSRUN_EXIT_LOST, "mosrun: %s accepted %s but never connected back\n", h->where,
             h->prog);
}

/* A word a shell would pass on unchanged: no quoting, expansion or separator in it. */
static int plain_word(const char *w)
{
    if (!*w)
        return 0;
    for (; *w; w++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=,+@%-",
                     *w))
            return 0;
    return 1;
}

/* The user's shell for `-c`: their login shell where /etc/shells lists it, else /bin/sh (a
 * service account's nologin would refuse every command, and -E ran programs for them before
 * it spoke ssh's contract). */
static const char *user_shell(void)
{
    struct passwd *pw = getpwuid(getuid());
    const char *sh;

    if (pw && pw->pw_shell && *pw->pw_shell) {
        setusershell();
        while ((sh = getusershell()))
            if (strcmp(sh, pw->pw_shell) == 0)
                break;
        endusershell();
        if (sh)
            return pw->pw_shell;
    }
    return "/bin/sh";
}

/* ssh's contract, which MPI launchers (OpenMPI's plm_rsh_agent) rely on: the words are joined
 * with spaces and run by the user's shell with -c, so `PATH=...; export PATH; orted -mca ess
 * "env"` means what it says. Words a shell would leave alone are exec'ed directly instead:
 * the same program and arguments, without a shell in between. Never returns NULL. */
static char **ssh_words(char **argv)
{
    size_t len = 1, n = 0;
    int all_plain = 1;
    char **shell_argv, *line;

    for (char **a = argv; *a; a++, n++) {
        len += strlen(*a) + 1;
        all_plain &= plain_word(*a);
    }
    if (all_plain)
        return argv;
    line = calloc(1, len);
    shell_argv = calloc(4, sizeof(*shell_argv));
    if (!line || !shell_argv)
        fail(1, "mosrun: out of memory\n");
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(line, " ");
        strcat(line, argv[i]);
    }
    shell_argv[0] = (char *)user_shell();
    shell_argv[1] = "-c";
    shell_argv[2] = line;
    return shell_argv;
}

void mosrun_exec_run(const char *config, const char *target, long mem_mib, char **words)
{
    char **argv = ssh_words(words);
    struct exec_home h = {.prog = words[0], .link = {.fd = -1}};
    int port = 0, status = 0, rc;

    /* Signals keep their default effect until the program runs: a Ctrl-C now just ends us,
     * mosd drops the job with our connection, and a target's link back to us fails. */
    connect_mosd(&h, config);
    h.listen_fd = mos_deputy_link_listen(h.addr, &port);
    if (h.listen_fd < 0)
        fail(1, "mosrun: cannot listen on %s for the program's link: %s\n", h.addr,
             mos_strerror(h.listen_fd));
    mos_random_bytes(h.token, sizeof(h.token));
    struct json_object *req = request(&h, target, mem_mib, argv, port);
    rc = mos_control_send(h.mosd_fd, req);
    json_object_put(req);
    if (rc != 0)
        fail(1, "mosrun: cannot ask mosd: %s\n", mos_strerror(rc));
    await_start(&h);
    close(h.listen_fd);
    rc = mos_exec_home_serve(&h.link, passed_signals, &status);
    if (rc != 0)
        fail(MOSRUN_EXIT_LOST, "mosrun: lost the link to %s (%s): the program is lost\n",
             h.where, mos_strerror(rc));
    mosrun_exit_like(status);
}
