/* mosckpt: checkpoint, restart and direct migration of a process (thin main over migrate/). */
#include "mos/config.h"
#include "mos/key.h"
#include "mos/log.h"
#include "mos/migrate.h"
#include "mos/status.h"
#include "mos/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mosckpt dump PID FILE [--leave-running] [--close-other-fds] [--carry-files]\n"
            "       mosckpt restore FILE [--detach]\n"
            "       mosckpt info FILE [--json]\n"
            "       mosckpt check PID\n"
            "       mosckpt send PID HOST:PORT [--key FILE] [--close-other-fds] [--carry-files]\n"
            "                    [--live]\n"
            "       mosckpt receive --listen [ADDR:]PORT [--key FILE] [--detach]\n"
            "  send/receive prove the cluster key (--key FILE on both ends, else key_file of\n"
            "  $MOS_CONF or %s); --listen PORT binds loopback only\n",
            MOS_CONFIG_DEFAULT_PATH);
}

static int bad_usage(const char *why)
{
    fprintf(stderr, "mosckpt: %s (mosckpt --help)\n", why);
    return 2;
}

static int parse_pid(const char *s, pid_t *pid)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v <= 0 || v > INT_MAX)
        return -1;
    *pid = (pid_t)v;
    return 0;
}

/* Options after the positional arguments: flags from `allowed` (NULL-terminated; set[k] = 1)
 * and, where key_file is given, --key FILE. */
static int parse_flags(int argc, char **argv, int first, const char *const *allowed, int *set,
                       const char **key_file)
{
    for (int i = first; i < argc; i++) {
        if (key_file && strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            *key_file = argv[++i];
            continue;
        }
        int k = 0;
        while (allowed[k] && strcmp(argv[i], allowed[k]))
            k++;
        if (!allowed[k])
            return -1;
        set[k] = 1;
    }
    return 0;
}

static int cmd_dump(int argc, char **argv)
{
    static const char *const flags[] = {"--leave-running", "--close-other-fds", "--carry-files",
                                        NULL};
    int set[3] = {0};
    pid_t pid;
    struct mos_dump_stats st;

    if (argc < 2 || parse_pid(argv[0], &pid) || parse_flags(argc, argv, 2, flags, set, NULL))
        return bad_usage("dump needs PID FILE [--leave-running] [--close-other-fds] "
                         "[--carry-files]");
    struct mos_dump_opts opts = {.close_other_fds = set[1], .carry_files = set[2]};
    if (mos_migrate_checkpoint(pid, argv[1], &opts, set[0], &st) != 0)
        return 1;
    printf("dumped pid %d to %s: %llu pages (%llu zero pages skipped), %.1f MiB, freeze %.2f ms, "
           "capture %.2f ms%s\n",
           (int)pid, argv[1], (unsigned long long)st.pages, (unsigned long long)st.zero_pages,
           st.bytes / 1048576.0, st.freeze_ns / 1e6, (st.state_ns + st.pages_ns) / 1e6,
           set[0] ? ", left running" : "");
    return 0;
}

static int cmd_restore(int argc, char **argv)
{
    static const char *const flags[] = {"--detach", NULL};
    int set[1] = {0}, fd, rc;
    char husk[PATH_MAX];
    struct mos_img_io *io = NULL;
    struct mos_restore *r;

    if (argc < 1 || parse_flags(argc, argv, 1, flags, set, NULL))
        return bad_usage("restore needs FILE [--detach]");
    fd = open(argv[0], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "mosckpt: cannot open %s: %s\n", argv[0], strerror(errno));
        return 1;
    }
    struct mos_restore_opts opts = {.husk_path = mos_restore_husk_path(husk, sizeof(husk))};
    rc = mos_img_io_fd_open(fd, &io);
    if (rc == 0)
        rc = mos_restore_prepare(io, &opts, &r);
    mos_img_io_close(io);
    close(fd);
    if (rc != 0)
        return 1;
    pid_t pid = mos_restore_pid(r);
    if (mos_restore_commit(r) != 0)
        return 1;
    if (set[0]) {
        printf("%d\n", (int)pid);
        return 0;
    }
    return mos_restored_wait(pid);
}

static int cmd_check(int argc, char **argv)
{
    char reason[256];
    pid_t pid;

    if (argc != 1 || parse_pid(argv[0], &pid))
        return bad_usage("check needs PID");
    int rc = mos_migrate_check(pid, NULL, reason, sizeof(reason));
    if (rc == 0) {
        printf("pid %d: migratable\n", (int)pid);
        return 0;
    }
    if (rc == MOS_E_NOT_MIGRATABLE)
        printf("pid %d stays: it %s\n", (int)pid, reason);
    else
        fprintf(stderr, "mosckpt: pid %d: %s\n", (int)pid, mos_strerror(rc));
    return 1;
}

static void prot_text(uint32_t prot, char *s)
{
    s[0] = prot & PROT_READ ? 'r' : '-';
    s[1] = prot & PROT_WRITE ? 'w' : '-';
    s[2] = prot & PROT_EXEC ? 'x' : '-';
    s[3] = '\0';
}

static void info_json(const struct mos_image_info *in)
{
    json_object *o = json_object_new_object(), *vmas = json_object_new_array(),
                *fds = json_object_new_array();
    char prot[4];

    json_object_object_add(o, "format_version", json_object_new_int(in->format_version));
    json_object_object_add(o, "src_pid", json_object_new_int64((int64_t)in->src_pid));
    json_object_object_add(o, "host", json_object_new_string(in->host));
    json_object_object_add(o, "time_ns", json_object_new_int64((int64_t)in->time_ns));
    json_object_object_add(o, "exe", json_object_new_string(in->exe));
    json_object_object_add(o, "cwd", json_object_new_string(in->cwd));
    json_object_object_add(o, "rip", json_object_new_int64((int64_t)in->rip));
    json_object_object_add(o, "rsp", json_object_new_int64((int64_t)in->rsp));
    json_object_object_add(o, "threads", json_object_new_int((int)in->threads));
    json_object_object_add(o, "xstate_bytes", json_object_new_int((int)in->xstate_len));
    json_object_object_add(o, "signal_handlers", json_object_new_int((int)in->handlers));
    json_object_object_add(o, "signals_pending", json_object_new_int((int)in->pending));
    json_object_object_add(o, "pages", json_object_new_int64((int64_t)in->pages));
    json_object_object_add(o, "records", json_object_new_int64((int64_t)in->records));
    json_object_object_add(o, "bytes", json_object_new_int64((int64_t)in->bytes));
    for (size_t i = 0; i < in->nvmas; i++) {
        const struct mos_image_vma_info *v = &in->vmas[i];
        json_object *j = json_object_new_object();
        prot_text(v->prot, prot);
        json_object_object_add(j, "start", json_object_new_int64((int64_t)v->start));
        json_object_object_add(j, "end", json_object_new_int64((int64_t)v->end));
        json_object_object_add(j, "prot", json_object_new_string(prot));
        json_object_object_add(j, "kind", json_object_new_string(v->kind));
        json_object_object_add(j, "path", json_object_new_string(v->path));
        json_object_object_add(j, "pages", json_object_new_int64((int64_t)v->pages));
        json_object_array_add(vmas, j);
    }
    for (size_t i = 0; i < in->nfds; i++) {
        const struct mos_image_fd_info *f = &in->fds[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "fd", json_object_new_int(f->fd));
        json_object_object_add(j, "kind", json_object_new_string(f->kind));
        json_object_object_add(j, "path", json_object_new_string(f->path));
        json_object_object_add(j, "offset", json_object_new_int64((int64_t)f->offset));
        json_object_object_add(j, "flags", json_object_new_int((int)f->flags));
        if (strcmp(f->kind, "pipe") == 0) {
            json_object_object_add(j, "pipe_size", json_object_new_int64(f->pipe_size));
            json_object_object_add(j, "queued", json_object_new_int64(f->queued));
        } else if (strcmp(f->kind, "unix") == 0) {
            json_object_object_add(j, "queued", json_object_new_int64(f->queued));
            json_object_object_add(j, "messages", json_object_new_int64(f->messages));
            json_object_object_add(j, "peer", json_object_new_int64((int64_t)f->peer));
        } else if (strcmp(f->kind, "memfd") == 0) {
            json_object_object_add(j, "object", json_object_new_int64((int64_t)f->peer));
        }
        json_object_array_add(fds, j);
    }
    json_object *memfds = json_object_new_array();
    for (size_t i = 0; i < in->nmemfds; i++) {
        const struct mos_image_memfd_info *mf = &in->memfds[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "name", json_object_new_string(mf->name));
        json_object_object_add(j, "object", json_object_new_int64((int64_t)mf->ino));
        json_object_object_add(j, "size", json_object_new_int64((int64_t)mf->size));
        json_object_object_add(j, "pages", json_object_new_int64((int64_t)mf->data_pages));
        json_object_object_add(j, "seals", json_object_new_int((int)mf->seals));
        json_object_array_add(memfds, j);
    }
    json_object_object_add(o, "vmas", vmas);
    json_object_object_add(o, "fds", fds);
    json_object_object_add(o, "memfds", memfds);
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
    json_object_put(o);
}

static void info_text(const struct mos_image_info *in)
{
    char prot[4];

    printf("image format %u: pid %llu (%u thread%s) on %s, %s (cwd %s)\n", in->format_version,
           (unsigned long long)in->src_pid, in->threads, in->threads == 1 ? "" : "s", in->host,
           in->exe, in->cwd);
    printf("rip %#llx rsp %#llx, xstate %u bytes, %u handlers, %u pending signals\n",
           (unsigned long long)in->rip, (unsigned long long)in->rsp, in->xstate_len,
           in->handlers, in->pending);
    for (size_t i = 0; i < in->nvmas; i++) {
        const struct mos_image_vma_info *v = &in->vmas[i];
        prot_text(v->prot, prot);
        printf("  vma %012llx-%012llx %s %-11s %8llu pages %s\n", (unsigned long long)v->start,
               (unsigned long long)v->end, prot, v->kind, (unsigned long long)v->pages, v->path);
    }
    for (size_t i = 0; i < in->nfds; i++) {
        const struct mos_image_fd_info *f = &in->fds[i];
        if (strcmp(f->kind, "pipe") == 0 && f->queued)
            printf("  fd %d pipe %s flags %#o, capacity %u, holds %u bytes\n", f->fd, f->path,
                   f->flags, f->pipe_size, f->queued);
        else if (strcmp(f->kind, "pipe") == 0)
            printf("  fd %d pipe %s flags %#o, capacity %u\n", f->fd, f->path, f->flags,
                   f->pipe_size);
        else if (strcmp(f->kind, "unix") == 0 && f->dup_of >= 0)
            printf("  fd %d unix %s flags %#o, a dup of fd %d\n", f->fd, f->path, f->flags,
                   f->dup_of);
        else if (strcmp(f->kind, "unix") == 0 && f->peer)
            printf("  fd %d unix %s flags %#o, peer socket:[%llu], holds %u bytes in %u "
                   "message%s\n", f->fd, f->path, f->flags, (unsigned long long)f->peer,
                   f->queued, f->messages, f->messages == 1 ? "" : "s");
        else if (strcmp(f->kind, "unix") == 0)
            printf("  fd %d unix %s flags %#o, other end closed, holds %u bytes in %u "
                   "message%s\n", f->fd, f->path, f->flags, f->queued, f->messages,
                   f->messages == 1 ? "" : "s");
        else if (strcmp(f->kind, "memfd") == 0)
            printf("  fd %d memfd %s offset %llu flags %#o, object %llu\n", f->fd, f->path,
                   (unsigned long long)f->offset, f->flags, (unsigned long long)f->peer);
        else
            printf("  fd %d %s %s offset %llu flags %#o\n", f->fd, f->kind, f->path,
                   (unsigned long long)f->offset, f->flags);
    }
    for (size_t i = 0; i < in->nmemfds; i++)
        printf("  memfd object %llu \"%s\" %llu bytes, %llu pages carried, seals %#x\n",
               (unsigned long long)in->memfds[i].ino, in->memfds[i].name,
               (unsigned long long)in->memfds[i].size,
               (unsigned long long)in->memfds[i].data_pages, in->memfds[i].seals);
    printf("%llu pages in %llu records, %llu bytes\n", (unsigned long long)in->pages,
           (unsigned long long)in->records, (unsigned long long)in->bytes);
}

static int cmd_info(int argc, char **argv)
{
    static const char *const flags[] = {"--json", NULL};
    int set[1] = {0}, fd, rc;
    struct mos_img_io *io = NULL;
    struct mos_image_info info;

    if (argc < 1 || parse_flags(argc, argv, 1, flags, set, NULL))
        return bad_usage("info needs FILE [--json]");
    fd = open(argv[0], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "mosckpt: cannot open %s: %s\n", argv[0], strerror(errno));
        return 1;
    }
    rc = mos_img_io_fd_open(fd, &io);
    if (rc == 0)
        rc = mos_image_info_read(io, &info);
    mos_img_io_close(io);
    close(fd);
    if (rc != 0)
        return 1;
    if (set[0])
        info_json(&info);
    else
        info_text(&info);
    mos_image_info_free(&info);
    return 0;
}

/* ---- send and receive: over the transport, the cluster key proved both ways first (a
 * receiver restores whatever arrives as its caller, root included). */

#define MOSCKPT_STREAM_TIMEOUT_MS 120000

/* The key: --key FILE, else key_file of the config ($MOS_CONF, else the default path). 0, or 1
 * after one line on stderr. */
static int cluster_key(const char *key_file, const char *cmd, mos_key_t *key)
{
    struct mos_config cfg;
    int may_be_absent = 0, rc;

    if (key_file)
        return mos_key_load(key_file, key) == 0 ? 0 : 1; /* it says why */
    const char *path = mos_config_choose_path(NULL, &may_be_absent);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "mosckpt: %s needs the cluster key: give --key FILE (the same on both "
                        "ends), or key_file in %s (%s)\n", cmd, path, strerror(errno));
        return 1;
    }
    if (mos_config_load(path, &cfg) != 0)
        return 1; /* it says why */
    if (!cfg.key_file[0]) {
        fprintf(stderr, "mosckpt: %s needs the cluster key: give --key FILE (the same on both "
                        "ends); %s has no key_file\n", cmd, path);
        mos_config_free(&cfg);
        return 1;
    }
    rc = mos_key_load(cfg.key_file, key);
    mos_config_free(&cfg);
    return rc == 0 ? 0 : 1;
}

static int cmd_send(int argc, char **argv)
{
    static const char *const flags[] = {"--close-other-fds", "--carry-files", "--live", NULL};
    int set[3] = {0};
    const char *key_file = NULL;
    pid_t pid;
    struct mos_img_io *io = NULL;
    struct mos_dump_stats st;
    struct mos_tp_opts tp;
    mos_tp_conn_t *conn = NULL;
    mos_key_t key;

    if (argc < 2 || parse_pid(argv[0], &pid) ||
        parse_flags(argc, argv, 2, flags, set, &key_file))
        return bad_usage("send needs PID HOST:PORT [--key FILE] [--close-other-fds] "
                         "[--carry-files] [--live]");
    if (cluster_key(key_file, "send", &key) != 0)
        return 1;
    mos_tp_opts_default(&tp);
    tp.key = &key;
    int rc = mos_tp_connect(argv[1], &tp, &conn);
    if (rc != 0)
        return 1; /* the transport said why (endpoint, connect, key proof) */
    struct mos_dump_opts opts = {.close_other_fds = set[0], .carry_files = set[1],
                                 .live = set[2]};
    rc = mos_img_io_tp_open(conn, MOSCKPT_STREAM_TIMEOUT_MS, 0, &io);
    if (rc == 0)
        rc = mos_migrate_send(pid, &opts, io, NULL, &st);
    mos_img_io_close(io);
    mos_tp_close(conn);
    if (rc != 0)
        return 1;
    printf("sent pid %d to %s: %llu pages, %.1f MiB, frozen %.1f ms\n", (int)pid, argv[1],
           (unsigned long long)st.pages, st.bytes / 1048576.0, st.downtime_ns / 1e6);
    if (st.live_rounds)
        printf("live: %llu rounds in %.1f ms, %llu pages sent ahead (%llu again), %llu kept\n",
               (unsigned long long)st.live_rounds, st.live_ns / 1e6,
               (unsigned long long)st.live_pages, (unsigned long long)st.live_resent,
               (unsigned long long)st.live_kept);
    return 0;
}

/* --listen PORT is loopback's; ADDR:PORT (ADDR in brackets for IPv6) binds that address. */
static int listen_address(const char *arg, char *out, size_t len)
{
    const char *port = strrchr(arg, ':');
    char *end;

    port = port ? port + 1 : arg;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end || p <= 0 || p > 65535 || (port != arg && port - 1 == arg))
        return -EINVAL;
    if ((size_t)snprintf(out, len, port == arg ? "127.0.0.1:%s" : "%s", arg) >= len)
        return -EINVAL;
    return 0;
}

static int cmd_receive(int argc, char **argv)
{
    static const char *const flags[] = {"--detach", NULL};
    int set[1] = {0};
    const char *key_file = NULL;
    char husk[PATH_MAX], where[300];
    struct mos_img_io *io = NULL;
    struct mos_tp_opts tp;
    mos_tp_listener_t *l = NULL;
    mos_tp_conn_t *conn = NULL;
    mos_key_t key;
    pid_t pid;

    if (argc < 2 || strcmp(argv[0], "--listen") ||
        parse_flags(argc, argv, 2, flags, set, &key_file))
        return bad_usage("receive needs --listen [ADDR:]PORT [--key FILE] [--detach]");
    if (listen_address(argv[1], where, sizeof(where)) != 0)
        return bad_usage("receive --listen takes PORT (loopback) or ADDR:PORT");
    if (cluster_key(key_file, "receive", &key) != 0)
        return 1;
    mos_tp_opts_default(&tp);
    tp.key = &key;
    int rc = mos_tp_listen(where, &tp, &l);
    if (rc != 0)
        return 1; /* the transport said why */
    rc = mos_tp_accept(l, &conn); /* a sender without the key is refused there, and logged */
    mos_tp_listener_close(l);
    if (rc != 0)
        return 1;
    struct mos_restore_opts opts = {.husk_path = mos_restore_husk_path(husk, sizeof(husk))};
    rc = mos_img_io_tp_open(conn, MOSCKPT_STREAM_TIMEOUT_MS, 0, &io);
    if (rc == 0)
        rc = mos_migrate_receive(io, &opts, NULL, &pid);
    mos_img_io_close(io);
    mos_tp_close(conn);
    if (rc != 0)
        return 1;
    if (set[0]) {
        printf("%d\n", (int)pid);
        return 0;
    }
    return mos_restored_wait(pid);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } cmds[] = {{"dump", cmd_dump}, {"restore", cmd_restore}, {"info", cmd_info},
                {"check", cmd_check}, {"send", cmd_send}, {"receive", cmd_receive}};

    if (argc < 2)
        return bad_usage("no command");
    /* A peer that goes away must show up as EPIPE from write, not end us mid-transaction. */
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].run(argc - 2, argv + 2);
    return bad_usage("unknown command");
}
