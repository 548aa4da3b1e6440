/* mos_spank.so: srun --mos[=best|lock] starts each task of a Slurm job under mosrun, its
 * migrations held to the job's nodes (mosrun -N, from SLURM_JOB_NODELIST).
 *
 * Slurm 22.05 has no spank_prepend_task_argv: in slurm_spank_task_init, which runs in the
 * task's own process as the user just before it execs the job's program, the plugin execs
 * mosrun with the program's argv instead. mosrun registers the task with the node's mosd and
 * stays its parent, so the step's process tracking (and scancel) still see both.
 *
 * plugstack.conf arguments: mosrun=PATH (default /usr/bin/mosrun), config=FILE (mosrun
 * --config; default: mosrun's own lookup, $MOS_CONF then /etc/mos/mos.conf). */
#include <errno.h>
#include <limits.h>
#include <slurm/slurm.h>
#include <slurm/spank.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

SPANK_PLUGIN(mos, 1);

#define MOS_SPANK_MAX_NODES 128 /* mosrun -N takes at most this many names */
#define MOS_SPANK_MAX_ARGS 4096

enum mos_mode { MOS_OFF, MOS_PLAIN, MOS_BEST, MOS_LOCK };

static enum mos_mode mode = MOS_OFF;
static char mosrun_path[PATH_MAX] = "/usr/bin/mosrun";
static char config_path[PATH_MAX];

static int mode_option(int val, const char *arg, int remote)
{
    (void)val, (void)remote;
    if (!arg || !*arg)
        mode = MOS_PLAIN;
    else if (strcmp(arg, "best") == 0)
        mode = MOS_BEST;
    else if (strcmp(arg, "lock") == 0)
        mode = MOS_LOCK;
    else {
        slurm_error("mos: --mos=%s: give best, lock or nothing", arg);
        return ESPANK_BAD_ARG;
    }
    return ESPANK_SUCCESS;
}

struct spank_option spank_options[] = {
    {"mos", "[best|lock]",
     "run each task under mosrun (mos migrates it within the job's nodes); best: start it on "
     "the best of them (mosrun -b), lock: never move it automatically (mosrun -L)",
     2, 0, mode_option},
    SPANK_OPTIONS_TABLE_END};

/* mosrun=PATH and config=FILE from plugstack.conf: absolute paths only. */
static int plugin_args(int ac, char **av)
{
    for (int i = 0; i < ac; i++) {
        const char *v = strchr(av[i], '=');
        char *dst = NULL;
        if (strncmp(av[i], "mosrun=", 7) == 0)
            dst = mosrun_path;
        else if (strncmp(av[i], "config=", 7) == 0)
            dst = config_path;
        if (!dst || v[1] != '/' || strlen(v + 1) >= PATH_MAX) {
            slurm_error("mos: plugstack.conf argument '%s': expected mosrun=/PATH or "
                        "config=/PATH", av[i]);
            return -1;
        }
        snprintf(dst, PATH_MAX, "%s", v + 1);
    }
    return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
    (void)sp;
    return plugin_args(ac, av) == 0 ? ESPANK_SUCCESS : ESPANK_ERROR;
}

/* SLURM_JOB_NODELIST ("mos[1-3],x") expanded to "mos1,mos2,mos3,x" in out. */
static int expand_nodes(spank_t sp, char *out, size_t len)
{
    char compressed[8192];
    hostlist_t hl;
    char *host;
    size_t used = 0;
    int n = 0, rc = 0;

    if (spank_getenv(sp, "SLURM_JOB_NODELIST", compressed, sizeof(compressed)) != ESPANK_SUCCESS) {
        slurm_error("mos: the task has no SLURM_JOB_NODELIST");
        return -1;
    }
    hl = slurm_hostlist_create(compressed);
    if (!hl) {
        slurm_error("mos: SLURM_JOB_NODELIST '%.100s' is not a host list", compressed);
        return -1;
    }
    out[0] = '\0';
    while (rc == 0 && (host = slurm_hostlist_shift(hl))) {
        size_t hl_len = strlen(host);
        if (++n > MOS_SPANK_MAX_NODES || used + hl_len + 2 > len) {
            slurm_error("mos: the job has more than %d nodes, more than mosrun -N takes",
                        MOS_SPANK_MAX_NODES);
            rc = -1;
        } else {
            used += (size_t)snprintf(out + used, len - used, "%s%s", used ? "," : "", host);
        }
        free(host);
    }
    slurm_hostlist_destroy(hl);
    return n == 0 ? -1 : rc;
}

/* mosrun [--config FILE] -N NODES [-b|-L] -- ARGV... */
static int task_exec(spank_t sp)
{
    static char nodes[MOS_SPANK_MAX_NODES * 64 + 1];
    int argc = 0, k = 0;
    char **argv = NULL, **env = NULL;
    char *args[MOS_SPANK_MAX_ARGS + 8];

    if (spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS || argc < 1 ||
        argc > MOS_SPANK_MAX_ARGS) {
        slurm_error("mos: cannot read the task's command line");
        return -1;
    }
    /* slurmstepd gives the task its environment at exec, not in this process's environ */
    if (spank_get_item(sp, S_JOB_ENV, &env) != ESPANK_SUCCESS || !env) {
        slurm_error("mos: cannot read the task's environment");
        return -1;
    }
    if (expand_nodes(sp, nodes, sizeof(nodes)) != 0)
        return -1;
    args[k++] = mosrun_path;
    if (config_path[0]) {
        args[k++] = "--config";
        args[k++] = config_path;
    }
    args[k++] = "-N";
    args[k++] = nodes;
    if (mode == MOS_BEST)
        args[k++] = "-b";
    else if (mode == MOS_LOCK)
        args[k++] = "-L";
    args[k++] = "--";
    for (int i = 0; i < argc; i++)
        args[k++] = argv[i];
    args[k] = NULL;
    execve(mosrun_path, args, env);
    slurm_error("mos: cannot run %s: %s", mosrun_path, strerror(errno));
    return -1;
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
    (void)ac, (void)av;
    if (mode == MOS_OFF || !spank_remote(sp))
        return ESPANK_SUCCESS;
    return task_exec(sp) == 0 ? ESPANK_SUCCESS : ESPANK_ERROR;
}
