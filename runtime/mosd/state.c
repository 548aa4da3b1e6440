/* The job table kept on disk, so that a mosd that restarts (crash, upgrade, systemctl restart)
 * takes its jobs back: its own jobs (at home or away) and the guests whose supervisors ran on
 * without it.
 *
 * The file is written whole on every change (a temporary file renamed over it: a reader sees
 * the old table or the new one, never half). It is read back as untrusted input: only from a
 * root-owned directory others cannot enter, only a root-owned 0600 file, parsed field by field
 * (parse.c), and each record is then checked against the kernel: the pid must still be the
 * very process registered (same start time, same parent), or it is dropped. */
#include "mosd.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STATE_FILE "jobs.json"
#define STATE_MAX_BYTES (8u << 20)

/* Only root may have written anything in it, and nobody else may even look. */
static int dir_is_safe(const char *dir, char *why, size_t len)
{
    struct stat st;

    if (lstat(dir, &st) != 0) {
        snprintf(why, len, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 077)) {
        snprintf(why, len, "%s is not a directory of root's with mode 0700 (uid %d, mode %04o)",
                 dir, (int)st.st_uid, (unsigned)(st.st_mode & 07777));
        return -1;
    }
    return 0;
}

int mosd_state_open(struct mosd *d)
{
    char why[400];

    if (mos_config_expand_node(d->cfg.state_dir, d->cfg.nodes[d->self].name, d->state_dir,
                               sizeof(d->state_dir)) != 0 || d->state_dir[0] != '/') {
        mos_err("mosd", "state_dir '%s' is not an absolute path that fits; no job table is "
                "kept", d->cfg.state_dir);
        d->state_dir[0] = '\0';
        return -1;
    }
    if (mkdir(d->state_dir, 0700) != 0 && errno != EEXIST)
        mos_dbg("mosd", "mkdir %s: %s", d->state_dir, strerror(errno));
    if (dir_is_safe(d->state_dir, why, sizeof(why)) != 0) {
        mos_err("mosd", "state directory refused: %s; no job table is kept", why);
        d->state_dir[0] = '\0';
        return -1;
    }
    return 0;
}

void mosd_state_sup_socket(const struct mosd *d, pid_t supervisor, char *out, size_t len)
{
    snprintf(out, len, "%s/sup-%d.sock", d->state_dir, (int)supervisor);
}

/* ---- writing ------------------------------------------------------------------------------ */

static void add_int(struct json_object *o, const char *key, long long v)
{
    json_object_object_add(o, key, json_object_new_int64(v));
}

static void add_u64(struct json_object *o, const char *key, unsigned long long v)
{
    char text[24];

    snprintf(text, sizeof(text), "%llu", v);
    json_object_object_add(o, key, json_object_new_string(text));
}

static struct json_object *ident_json(const struct mos_proc_ident *id)
{
    static const char *const uid_keys[] = {"ruid", "euid", "suid", "fsuid"};
    static const char *const gid_keys[] = {"rgid", "egid", "sgid", "fsgid"};
    struct json_object *o = json_object_new_object();

    for (int i = 0; i < MOS_ID_FIELDS; i++) {
        add_int(o, uid_keys[i], id->uid[i]);
        add_int(o, gid_keys[i], id->gid[i]);
    }
    add_u64(o, "cap_prm", id->cap_prm);
    add_u64(o, "cap_eff", id->cap_eff);
    add_u64(o, "cap_amb", id->cap_amb);
    add_u64(o, "start", id->start_time);
    add_int(o, "status_uid", id->status_uid);
    add_int(o, "exe_setid", id->exe_setid);
    return o;
}

/* The jobs worth taking back: own jobs held by a pidfd, and guests under a supervisor (mosrun
 * -E relays and jobs of ours back home as guests are not kept). */
static struct json_object *job_record(const struct mosd *d, const struct mosd_job *job)
{
    const char *self = d->cfg.nodes[d->self].name;
    int guest = job->supervisor != 0;

    if (job->native || (guest && strcmp(job->home, self) == 0) || (!guest && job->pidfd <= 0))
        return NULL;
    struct json_object *o = json_object_new_object();
    add_int(o, "guest", guest);
    add_int(o, "id", job->id);
    add_int(o, "pid", job->pid);
    add_int(o, "home_pid", job->home_pid);
    add_int(o, "uid", job->uid);
    add_int(o, "gid", job->gid);
    add_int(o, "locked", job->locked);
    add_u64(o, "started_ns", job->started_ns);
    json_object_object_add(o, "cmd", json_object_new_string(job->cmd));
    json_object_object_add(o, "home", json_object_new_string(job->home));
    json_object_object_add(o, "where", json_object_new_string(job->where));
    if (job->nodes.restricted)
        json_object_object_add(o, "nodes", mosd_nodeset_json(d, &job->nodes));
    if (guest) {
        add_int(o, "supervisor", job->supervisor);
        add_u64(o, "sup_start", job->sup_start);
    } else {
        add_int(o, "owner_pid", job->owner_pid);
        add_int(o, "owner_fd_min", job->owner_fd_min);
        json_object_object_add(o, "ident", ident_json(&job->ident));
    }
    return o;
}

static int write_all(int fd, const char *text, size_t len)
{
    while (len) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        text += n;
        len -= (size_t)n;
    }
    return 0;
}

void mosd_state_save(const struct mosd *d)
{
    char path[300], tmp[310];

    if (!d->state_dir[0])
        return;
    struct json_object *root = json_object_new_object(), *jobs = json_object_new_array();
    add_int(root, "version", MOSD_STATE_VERSION);
    json_object_object_add(root, "node", json_object_new_string(d->cfg.nodes[d->self].name));
    for (size_t i = 0; i < d->n_jobs; i++) {
        struct json_object *rec = job_record(d, &d->jobs[i]);
        if (rec)
            json_object_array_add(jobs, rec);
    }
    json_object_object_add(root, "jobs", jobs);
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
    snprintf(path, sizeof(path), "%s/%s", d->state_dir, STATE_FILE);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    /* /run is memory: a rename without fsync is as durable as the jobs it describes */
    if (fd < 0 || write_all(fd, text, strlen(text)) != 0 || close(fd) != 0 ||
        rename(tmp, path) != 0) {
        mos_warn("mosd", "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
    }
    json_object_put(root);
}

/* ---- reading back ------------------------------------------------------------------------- */

/* The file's text (*size bytes, NUL-terminated), if it is root's own, 0600, a regular file
 * and not too large; NULL with why[len] otherwise ("" when there is no file). */
static char *read_state_file(const char *path, size_t *size, char *why, size_t len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    char *text = NULL;

    if (fd < 0) {
        if (errno != ENOENT)
            snprintf(why, len, "%s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
        (st.st_mode & 07777) != 0600) {
        snprintf(why, len, "the file is not root's with mode 0600 (uid %d, mode %04o)",
                 (int)st.st_uid, (unsigned)(st.st_mode & 07777));
    } else if ((size_t)st.st_size > STATE_MAX_BYTES) {
        snprintf(why, len, "larger than %u bytes", STATE_MAX_BYTES);
    } else if ((text = malloc((size_t)st.st_size + 1))) {
        ssize_t n = read(fd, text, (size_t)st.st_size);
        if (n != st.st_size) {
            snprintf(why, len, "short read");
            free(text);
            text = NULL;
        } else {
            text[n] = '\0';
            *size = (size_t)n;
        }
    }
    close(fd);
    return text;
}

/* pid held by a pidfd, read after the pidfd is taken and while still alive: the identity read
 * is that process's, not one given the pid since. */
static int hold(pid_t pid, int *pidfd, struct mos_proc_ident *now)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    int rc;

    if (fd < 0)
        return mos_errno_status();
    rc = mos_proc_ident_read(pid, now);
    if (rc == 0 && syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) != 0)
        rc = -ESRCH;
    if (rc != 0) {
        close(fd);
        return rc;
    }
    *pidfd = fd;
    return 0;
}

/* An own job taken back ended before its mosrun reconnected (or while it is away, whose end
 * is mosrun killing the shell): nobody else would tell. */
static void on_job_gone(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;

    (void)what;
    for (size_t i = 0; i < d->n_jobs; i++) {
        struct mosd_job *job = &d->jobs[i];
        if (job->pid_ev && job->pidfd == (int)fd && !job->owner && !job->moving) {
            mos_info("mosd", "job %d (pid %d) ended", job->id, (int)job->pid);
            event_free(job->pid_ev);
            job->pid_ev = NULL;
            mosd_job_remove(d, job);
            mosd_state_save(d);
            return;
        }
    }
}

static void fill_job(struct mosd *d, struct mosd_job *job, const struct mosd_state_rec *r)
{
    job->id = r->id;
    job->pid = r->pid;
    job->home_pid = r->home_pid;
    job->uid = r->uid;
    job->gid = r->gid;
    job->locked = r->locked;
    if (r->started_ns && r->started_ns <= job->started_ns) /* AGE and the balancer's view go on */
        job->started_ns = r->started_ns;
    mosd_nodeset_of_names(d, r->nodes, &job->nodes);
    snprintf(job->cmd, sizeof(job->cmd), "%s", r->cmd);
    snprintf(job->home, sizeof(job->home), "%s", r->home);
    snprintf(job->where, sizeof(job->where), "%s", r->where);
    if (d->next_job_id < r->id)
        d->next_job_id = r->id;
}

/* Still the registered process, still its mosrun's child: held again. */
static int take_own(struct mosd *d, const struct mosd_state_rec *r)
{
    struct mos_proc_ident now;
    int pidfd = -1, rc = hold(r->pid, &pidfd, &now);

    if (rc != 0 || now.start_time != r->ident.start_time || now.ppid != r->owner_pid) {
        mos_warn("mosd", "job %d: pid %d is %s: dropped", r->id, (int)r->pid,
                 rc != 0 ? "gone" : "another process now (pid reused, or its mosrun gone)");
        if (rc == 0)
            close(pidfd);
        return 0;
    }
    struct mosd_job *job = mosd_job_add(d);
    if (!job) {
        close(pidfd);
        return 0;
    }
    fill_job(d, job, r);
    job->pidfd = pidfd;
    job->ident = r->ident;
    job->owner_pid = r->owner_pid;
    job->owner_fd_min = r->owner_fd_min;
    job->pid_ev = event_new(d->base, pidfd, EV_READ, on_job_gone, d);
    event_add(job->pid_ev, NULL);
    mos_info("mosd", "job %d (pid %d, on %s) taken back; waiting for its mosrun", job->id,
             (int)job->pid, job->where);
    return 1;
}

/* Still the supervisor started for it: peer.c takes its control line. */
static int take_guest(struct mosd *d, const struct mosd_state_rec *r)
{
    struct mos_proc_ident sup, guest;
    int rc = mos_proc_ident_read(r->supervisor, &sup);

    if (rc == 0)
        rc = mos_proc_ident_read(r->pid, &guest);
    if (rc != 0 || sup.start_time != r->sup_start || sup.uid[MOS_ID_EFFECTIVE] != 0 ||
        guest.uid[MOS_ID_REAL] != r->uid) {
        mos_warn("mosd", "guest pid %d (home %s pid %d): its supervisor %d is %s: dropped",
                 (int)r->pid, r->home, (int)r->home_pid, (int)r->supervisor,
                 rc != 0 ? "gone" : "not the one that served it");
        return 0;
    }
    struct mosd_job *job = mosd_job_add(d);
    if (!job)
        return 0;
    fill_job(d, job, r);
    job->supervisor = r->supervisor;
    job->sup_start = r->sup_start;
    job->adopted = 1;
    job->arrived_ns = mos_clock_now_ns();
    return 1;
}

/* Sockets of supervisors the table does not name (their guest ended, or their record was
 * refused): nobody will connect to them. */
static void remove_stray_sockets(const struct mosd *d)
{
    DIR *dir = opendir(d->state_dir);
    struct dirent *e;

    while (dir && (e = readdir(dir))) {
        int pid, end = 0;
        if (sscanf(e->d_name, "sup-%d.sock%n", &pid, &end) != 1 || e->d_name[end] != '\0')
            continue;
        int known = 0;
        for (size_t i = 0; i < d->n_jobs && !known; i++)
            known = d->jobs[i].adopted && d->jobs[i].supervisor == pid;
        if (!known)
            unlinkat(dirfd(dir), e->d_name, 0);
    }
    if (dir)
        closedir(dir);
}

int mosd_state_load(struct mosd *d)
{
    char path[300], why[400] = "";
    struct mosd_state_rec *recs = NULL;
    struct json_object *root = NULL;
    size_t n = 0;
    int taken = 0;

    if (!d->state_dir[0])
        return 0;
    snprintf(path, sizeof(path), "%s/%s", d->state_dir, STATE_FILE);
    size_t size = 0;
    char *text = read_state_file(path, &size, why, sizeof(why));
    if (text && !(recs = calloc(MOSD_STATE_MAX_JOBS, sizeof(*recs))))
        snprintf(why, sizeof(why), "out of memory");
    if (recs && mosd_state_parse(text, size, d->cfg.nodes[d->self].name, recs,
                                 MOSD_STATE_MAX_JOBS, &n, &root, why, sizeof(why)) != 0)
        n = 0;
    if (why[0])
        mos_err("mosd", "job table in %s not taken back: %s", path, why);
    for (size_t i = 0; i < n; i++)
        taken += recs[i].guest ? take_guest(d, &recs[i]) : take_own(d, &recs[i]);
    if (n)
        mos_info("mosd", "%d of %zu job(s) in %s taken back", taken, n, path);
    free(recs);
    json_object_put(root);
    free(text);
    remove_stray_sockets(d);
    mosd_state_save(d); /* what is held now, the dropped ones gone */
    return taken;
}
