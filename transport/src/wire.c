#include "mos/transport.h"

#include "mos/status.h"

#include <arpa/inet.h>
#include <string.h>

void mos_wire_hdr_encode(const struct mos_wire_hdr *hdr, uint8_t *buf)
{
    uint32_t magic = htonl(hdr->magic), length = htonl(hdr->length), id = htonl(hdr->id);
    uint16_t version = htons(hdr->version), type = htons(hdr->type);

    memcpy(buf, &magic, 4);
    memcpy(buf + 4, &version, 2);
    memcpy(buf + 6, &type, 2);
    memcpy(buf + 8, &length, 4);
    memcpy(buf + 12, &id, 4);
}

static uint32_t payload_limit(uint16_t type)
{
    return type == MOS_WIRE_PAGE_RUN ? MOS_WIRE_MAX_BULK : MOS_WIRE_MAX_CONTROL;
}

int mos_wire_hdr_decode(const uint8_t *buf, size_t len, struct mos_wire_hdr *hdr)
{
    uint32_t magic, length, id;
    uint16_t version, type;

    if (len < MOS_WIRE_HDR_BYTES)
        return MOS_E_TRUNCATED;
    memcpy(&magic, buf, 4);
    memcpy(&version, buf + 4, 2);
    memcpy(&type, buf + 6, 2);
    memcpy(&length, buf + 8, 4);
    memcpy(&id, buf + 12, 4);
    hdr->magic = ntohl(magic);
    hdr->version = ntohs(version);
    hdr->type = ntohs(type);
    hdr->length = ntohl(length);
    hdr->id = ntohl(id);
    if (hdr->magic != MOS_WIRE_MAGIC)
        return MOS_E_PROTO;
    if (hdr->version != MOS_WIRE_VERSION)
        return MOS_E_VERSION;
    if (hdr->type < 1 || hdr->type > MOS_WIRE_TYPE_MAX)
        return MOS_E_PROTO;
    if (hdr->length > payload_limit(hdr->type))
        return MOS_E_PROTO;
    return 0;
}
