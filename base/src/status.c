#include "mos/status.h"

#include <errno.h>
#include <string.h>

const char *mos_strerror(int status)
{
    switch (status) {
    case MOS_OK: return "success";
    case MOS_E_PROTO: return "malformed message";
    case MOS_E_VERSION: return "unsupported protocol version";
    case MOS_E_AUTH: return "cluster key proof failed (wrong key?)";
    case MOS_E_TAMPERED: return "message failed its session check (changed, replayed or forged on the way)";
    case MOS_E_TRUNCATED: return "truncated stream";
    case MOS_E_PEER_GONE: return "peer went away";
    case MOS_E_CONFIG: return "bad configuration";
    case MOS_E_KEY: return "bad or missing cluster key";
    case MOS_E_UNKNOWN_NODE: return "unknown node";
    case MOS_E_IMAGE: return "corrupt process image";
    case MOS_E_NOT_MIGRATABLE: return "process is not migratable";
    case MOS_E_UNSUPPORTED: return "not supported";
    case MOS_E_LIMIT: return "limit exceeded";
    case MOS_E_IDENTITY: return "not the user's identity on this node";
    default: break;
    }
    if (status < 0 && status > MOS_E_BASE)
        return strerror(-status);
    return "unknown error";
}

int mos_errno_status(void)
{
    return errno ? -errno : -EIO;
}
