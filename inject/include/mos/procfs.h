/* Readers of /proc for a task we inspect or drive: its VMA list (/proc/PID/maps), the fields of
 * /proc/PID/stat, and the signal masks of /proc/PID/status. The one place in the tree that
 * parses these files. In-tree users: inject, migrate, remote, runtime. */
#ifndef MOS_PROCFS_H
#define MOS_PROCFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MOS_VMA_PATH_MAX 4096

/* One line of /proc/PID/maps. */
struct mos_vma {
    uint64_t start, end;  /* [start, end) */
    uint64_t offset;      /* file offset of start */
    uint32_t prot;        /* PROT_READ | PROT_WRITE | PROT_EXEC */
    int shared;           /* 1 for MAP_SHARED ('s') */
    uint32_t dev_major, dev_minor;
    uint64_t inode;
    char path[MOS_VMA_PATH_MAX]; /* file, [heap], [stack], [vdso]... or "" */
};

struct mos_vma_list {
    struct mos_vma *vmas;
    size_t count;
};

/* Parse one maps line into vma. Returns 0 or MOS_E_PROTO. */
int mos_vma_parse_line(const char *line, struct mos_vma *vma);

/* Whether vma is MAP_SHARED|MAP_ANONYMOUS memory (or a shared map of /dev/zero, the same
 * thing): the kernel names its shmem object "/dev/zero (deleted)", one inode per mmap. */
int mos_vma_shared_anon(const struct mos_vma *vma);
/* Read /proc/PID/maps. Returns 0, -errno, or MOS_E_PROTO for a line that does not parse. */
int mos_vma_list_read(pid_t pid, struct mos_vma_list *list);
void mos_vma_list_free(struct mos_vma_list *list);

/* /proc/PID/stat, field numbers as in proc(5) (1-based: 3 is the state letter, 4 the parent).
 * The command (field 2) may hold spaces and parentheses: fields are counted from the last ')'. */
#define MOS_PROC_STAT_FIELDS 52
struct mos_proc_stat {
    char state;        /* field 3: R, S, D, T, t, Z, X... */
    unsigned long long f[MOS_PROC_STAT_FIELDS + 1]; /* f[4] .. f[52]; f[0..3] unused */
};
/* Read /proc/PID/stat. 0, -errno (-ENOENT: no such process), or MOS_E_PROTO. */
int mos_proc_stat_read(pid_t pid, struct mos_proc_stat *st);
/* The same over text already read (for tests and fuzzing). */
int mos_proc_stat_parse(const char *text, struct mos_proc_stat *st);
/* Named fields of proc(5) that callers use. */
enum {
    MOS_STAT_PPID = 4,
    MOS_STAT_PGRP = 5,
    MOS_STAT_SESSION = 6,
    MOS_STAT_UTIME = 14,
    MOS_STAT_STIME = 15,
    MOS_STAT_NUM_THREADS = 20,
    MOS_STAT_STARTTIME = 22,
    MOS_STAT_RSS = 24,
    MOS_STAT_START_CODE = 26,
    MOS_STAT_END_CODE = 27,
    MOS_STAT_START_STACK = 28,
    MOS_STAT_START_DATA = 45,
    MOS_STAT_END_DATA = 46,
    MOS_STAT_START_BRK = 47,
    MOS_STAT_ARG_START = 48,
    MOS_STAT_ARG_END = 49,
    MOS_STAT_ENV_START = 50,
    MOS_STAT_ENV_END = 51,
};

/* OR of the hex signal masks named by keys ("SigPnd:", "SigIgn:"...) in /proc/PID/status.
 * Returns how many of the keys were found (0..n), or -errno when the file cannot be read. */
int mos_proc_status_masks(pid_t pid, const char *const keys[], int n, uint64_t *mask);

/* The text after key ("Tgid:", "x86_Thread_features:"...) in /proc/PID/status, leading blanks
 * and the newline left out, cut to fit val. 1 when found, 0 when not, -errno. */
int mos_proc_status_text(pid_t pid, const char *key, char *val, size_t len);
/* The same for n keys in one read; a key not found leaves its val as it was. Returns how many
 * were found, or -errno. */
int mos_proc_status_texts(pid_t pid, const char *const keys[], char *const vals[], int n,
                          size_t len);

/* /proc/PID/limits: soft and hard limit of each of the 16 resources, in RLIMIT_* order
 * (RLIM_INFINITY for "unlimited"). Anyone may read it, where prlimit on another user's
 * process needs CAP_SYS_RESOURCE (which root lacks on some machines). 0, -errno, or
 * MOS_E_PROTO (logged by the caller) when the file has not 16 limits. */
#define MOS_PROC_RLIMITS 16
int mos_proc_rlimits_read(pid_t pid, uint64_t lim[MOS_PROC_RLIMITS][2]);

/* Who a process is and what it may do: enough to tell, later, that a pid is still the process
 * seen then and still runs with no more than its user's rights. */
enum { MOS_ID_REAL, MOS_ID_EFFECTIVE, MOS_ID_SAVED, MOS_ID_FS, MOS_ID_FIELDS };
struct mos_proc_ident {
    uid_t uid[MOS_ID_FIELDS]; /* status "Uid:" */
    gid_t gid[MOS_ID_FIELDS]; /* status "Gid:" */
    uint64_t cap_prm, cap_eff, cap_amb;
    pid_t ppid;
    unsigned long long start_time; /* stat field 22: with the pid, names one process */
    uid_t status_uid; /* owner of /proc/PID/status: the kernel makes it root while the process
                         is not dumpable (a set-id exec, a change of uid, PR_SET_DUMPABLE 0);
                         /proc/PID itself keeps the user's uid */
    int exe_setid;  /* its program file has a set-uid or set-gid bit: 1; 0 if not; -1 when
                       there is none to look at (a zombie) */
};
/* The text-borne fields from /proc/PID/status and /proc/PID/stat text (tests, fuzzing): every
 * one of Uid, Gid, CapPrm, CapEff, CapAmb and PPid must be there, well formed. status_uid and
 * exe_setid are left 0. 0 or MOS_E_PROTO. */
int mos_proc_ident_parse(const char *status, const char *stat, struct mos_proc_ident *id);
/* The same read from /proc, status_uid and exe_setid included. 0, -errno (-ENOENT: no such
 * process) or MOS_E_PROTO. */
int mos_proc_ident_read(pid_t pid, struct mos_proc_ident *id);

#endif
