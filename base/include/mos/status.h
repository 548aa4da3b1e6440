/* Status codes shared by every mos module.
 *
 * A function returns 0 (MOS_OK) on success, a negative errno for a failed system call, or a
 * negative project code below MOS_E_BASE for what errno cannot say. Convert errno to a status
 * once, at the system-call boundary; pass statuses up unchanged. */
#ifndef MOS_STATUS_H
#define MOS_STATUS_H

enum mos_status {
    MOS_OK = 0,
    MOS_E_BASE = -1000,
    /* this peer or link */
    MOS_E_PROTO = -1001,      /* malformed or out-of-limits message */
    MOS_E_VERSION = -1002,    /* peer speaks another wire version */
    MOS_E_AUTH = -1003,       /* peer failed the cluster-key proof */
    MOS_E_TRUNCATED = -1004,  /* stream or message ended early */
    MOS_E_PEER_GONE = -1005,  /* peer closed or reset mid-exchange */
    MOS_E_TAMPERED = -1006,   /* a message failed its session's check (mos/seal.h) */
    /* this node / local */
    MOS_E_CONFIG = -1010,     /* bad configuration */
    MOS_E_KEY = -1011,        /* cluster key missing or malformed */
    MOS_E_UNKNOWN_NODE = -1012,
    MOS_E_IMAGE = -1013,      /* corrupt process image */
    MOS_E_NOT_MIGRATABLE = -1014,
    MOS_E_UNSUPPORTED = -1015,
    MOS_E_LIMIT = -1016,      /* a configured or protocol limit was exceeded */
    MOS_E_IDENTITY = -1017,   /* a uid, gid or group that is not the user's on this node */
};

/* Human text for a status: strerror() for negative errno values, a fixed string for project
 * codes. Never returns NULL. */
const char *mos_strerror(int status);

/* -errno of the current errno, never 0 (a failed call that left errno 0 becomes -EIO). */
int mos_errno_status(void);

#endif
