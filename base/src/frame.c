#include "mos/frame.h"

#include "mos/status.h"

void mos_frame_hdr_encode(const struct mos_frame_proto *proto, uint16_t type, uint32_t length,
                          uint8_t *buf)
{
    mos_put_le32(buf, proto->magic);
    mos_put_le16(buf + 4, proto->version);
    mos_put_le16(buf + 6, type);
    mos_put_le32(buf + 8, length);
}

int mos_frame_hdr_decode(const struct mos_frame_proto *proto, const uint8_t *buf, size_t len,
                         struct mos_frame_hdr *hdr)
{
    uint16_t type;
    uint32_t length;

    for (size_t i = 0; i < 4 && i < len; i++)
        if (buf[i] != (uint8_t)(proto->magic >> (8 * i)))
            return MOS_E_PROTO;
    if (len < MOS_FRAME_HDR_BYTES)
        return MOS_E_TRUNCATED;
    if (mos_get_le16(buf + 4) != proto->version)
        return MOS_E_VERSION;
    type = mos_get_le16(buf + 6);
    length = mos_get_le32(buf + 8);
    if (!proto->length_ok(type, length))
        return MOS_E_PROTO;
    hdr->type = type;
    hdr->length = length;
    return 0;
}

int mos_frame_decode(const struct mos_frame_proto *proto, const uint8_t *buf, size_t len,
                     size_t hdr_bytes, struct mos_frame_hdr *hdr, size_t *used)
{
    struct mos_frame_hdr h;
    int rc = mos_frame_hdr_decode(proto, buf, len, &h);

    if (rc != 0)
        return rc;
    if (len < hdr_bytes || len - hdr_bytes < h.length)
        return MOS_E_TRUNCATED;
    *hdr = h;
    *used = hdr_bytes + h.length;
    return 0;
}
