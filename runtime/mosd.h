/* mosd's state, shared by its source files (private to the daemon). */
#ifndef MOSD_H
#define MOSD_H

#include "lib/control.h"
#include "mos/config.h"
#include "mos/key.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <json-c/json.h>
#include <stdint.h>
#include <sys/types.h>

/* A job started at this node (by mosrun) or running here as a guest. */
struct mosd_job {
    int id;
    pid_t pid;               /* local pid (at home: the native process) */
    pid_t home_pid;          /* pid at its home node, what getpid() returns */
    uid_t uid;
    char cmd[256];
    char home[MOS_NODE_NAME_MAX];  /* FROM */
    char where[MOS_NODE_NAME_MAX]; /* WHERE it runs now */
    char stay[128];          /* why it may not migrate, "" if it may */
    int locked;              /* mosrun -L: never moved automatically */
    uint64_t started_ns;
    struct bufferevent *owner; /* mosrun's registration connection (home jobs) */
};

struct mosd {
    struct event_base *base;
    struct mos_config cfg;
    int self;
    mos_key_t key;
    int have_key;
    char socket_path[108];
    struct evconnlistener *listener;
    struct event *signals[3];
    struct mosd_job *jobs;
    size_t n_jobs, cap_jobs;
    int next_job_id;
    uint64_t started_ns;
};

/* mosd_control.c: the command socket */
int mosd_control_start(struct mosd *d);
void mosd_control_stop(struct mosd *d);

/* mosd_jobs.c: the job table */
struct mosd_job *mosd_job_add(struct mosd *d);
struct mosd_job *mosd_job_find(struct mosd *d, pid_t pid);
void mosd_job_remove_owner(struct mosd *d, struct bufferevent *owner);
struct json_object *mosd_job_json(const struct mosd *d, const struct mosd_job *job);

#endif
