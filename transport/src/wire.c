#include "wire.h"

#include "mos/status.h"

#include <string.h>

uint32_t mos_wire_payload_limit(uint16_t type)
{
    switch (type) {
    case MOS_WIRE_PAGE_RUN:
        return MOS_WIRE_MAX_BULK;
    case MOS_WIRE_CONTROL:
    case MOS_WIRE_REPLY:
        return MOS_WIRE_MAX_CONTROL;
    case MOS_WIRE_HELLO:
        return MOS_WIRE_HELLO_SEALED_BYTES;
    case MOS_WIRE_CHALLENGE:
        return MOS_AUTH_CHALLENGE_BYTES;
    case MOS_WIRE_PROOF:
        return MOS_AUTH_SERVER_PROOF_BYTES;
    case MOS_WIRE_ATTACH:
        return MOS_WIRE_TOKEN_BYTES + MOS_MAC_BYTES;
    case MOS_WIRE_BULK_END:
        return MOS_WIRE_BULK_END_BYTES;
    case MOS_WIRE_CLOSE:
    case MOS_WIRE_SETUP:
        return MOS_WIRE_REASON_BYTES;
    default:
        return 0;
    }
}

static bool wire_length_ok(uint16_t type, uint32_t length)
{
    return type >= 1 && type <= MOS_WIRE_TYPE_MAX && length <= mos_wire_payload_limit(type);
}

const struct mos_frame_proto mos_wire_proto = {
    .magic = MOS_WIRE_MAGIC,
    .version = MOS_WIRE_VERSION,
    .length_ok = wire_length_ok,
};

void mos_wire_hdr_make(uint16_t type, uint32_t length, uint32_t id, uint8_t *buf)
{
    mos_frame_hdr_encode(&mos_wire_proto, type, length, buf);
    mos_put_le32(buf + MOS_FRAME_HDR_BYTES, id);
}

int mos_wire_hdr_decode(const uint8_t *buf, size_t len, struct mos_wire_hdr *hdr)
{
    struct mos_frame_hdr h;
    int rc = mos_frame_hdr_decode(&mos_wire_proto, buf, len, &h);

    if (rc != 0)
        return rc;
    if (len < MOS_WIRE_HDR_BYTES)
        return MOS_E_TRUNCATED;
    hdr->type = h.type;
    hdr->length = h.length;
    hdr->id = mos_get_le32(buf + MOS_FRAME_HDR_BYTES);
    return 0;
}

void mos_wire_runs_encode(const struct mos_page_run *runs, size_t n, uint8_t *buf)
{
    mos_put_le32(buf, (uint32_t)n);
    mos_put_le32(buf + 4, 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = buf + MOS_WIRE_RUN_HDR_BYTES + i * MOS_WIRE_RUN_BYTES;
        mos_put_le64(p, runs[i].addr);
        mos_put_le32(p + 8, (uint32_t)runs[i].npages);
        mos_put_le32(p + 12, 0);
    }
}

int mos_wire_runs_table_decode(const uint8_t *buf, size_t len, size_t payload_len,
                               struct mos_page_run *runs, size_t max_runs, size_t *n)
{
    uint64_t pages = 0;
    size_t count, table;

    if (len < MOS_WIRE_RUN_HDR_BYTES || payload_len < len)
        return MOS_E_PROTO;
    count = mos_get_le32(buf);
    if (count == 0 || count > max_runs || count > MOS_WIRE_MAX_RUNS)
        return MOS_E_PROTO;
    table = mos_wire_runs_table_bytes(count);
    if (table > len)
        return MOS_E_PROTO;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *p = buf + MOS_WIRE_RUN_HDR_BYTES + i * MOS_WIRE_RUN_BYTES;
        uint64_t addr = mos_get_le64(p), np = mos_get_le32(p + 8);

        /* Reject what a consumer could be fooled by: empty runs, unaligned addresses, runs
         * that wrap around the address space. */
        if (np == 0 || addr % MOS_TP_PAGE_SIZE != 0 ||
            addr + np * MOS_TP_PAGE_SIZE < addr)
            return MOS_E_PROTO;
        runs[i].addr = addr;
        runs[i].npages = np;
        pages += np;
    }
    if (pages * MOS_TP_PAGE_SIZE != payload_len - table)
        return MOS_E_PROTO;
    *n = count;
    return 0;
}

int mos_wire_runs_decode(const uint8_t *buf, size_t len, struct mos_page_run *runs,
                         size_t max_runs, size_t *n, const uint8_t **data)
{
    int rc = mos_wire_runs_table_decode(buf, len, len, runs, max_runs, n);

    if (rc == 0)
        *data = buf + mos_wire_runs_table_bytes(*n);
    return rc;
}

void mos_wire_hello_encode(const struct mos_wire_hello *h, uint8_t *buf)
{
    mos_put_le32(buf, h->caps);
    mos_put_le32(buf + 4, h->backend);
    mos_put_le32(buf + 8, h->slot_bytes);
    mos_put_le32(buf + 12, h->slot_count);
    mos_put_le32(buf + 16, h->n_qps);
    mos_put_le16(buf + 20, h->tcp_port);
    mos_put_le16(buf + 22, h->cm_port);
    memcpy(buf + 24, h->token, MOS_WIRE_TOKEN_BYTES);
    memset(buf + 24 + MOS_WIRE_TOKEN_BYTES, 0, sizeof(h->reason));
    memcpy(buf + 24 + MOS_WIRE_TOKEN_BYTES, h->reason, strnlen(h->reason, sizeof(h->reason) - 1));
}

int mos_wire_hello_decode(const uint8_t *buf, size_t len, struct mos_wire_hello *h)
{
    if (len != MOS_WIRE_HELLO_BYTES)
        return MOS_E_PROTO;
    h->caps = mos_get_le32(buf);
    h->backend = mos_get_le32(buf + 4);
    h->slot_bytes = mos_get_le32(buf + 8);
    h->slot_count = mos_get_le32(buf + 12);
    h->n_qps = mos_get_le32(buf + 16);
    h->tcp_port = mos_get_le16(buf + 20);
    h->cm_port = mos_get_le16(buf + 22);
    memcpy(h->token, buf + 24, MOS_WIRE_TOKEN_BYTES);
    memcpy(h->reason, buf + 24 + MOS_WIRE_TOKEN_BYTES, sizeof(h->reason));
    h->reason[sizeof(h->reason) - 1] = '\0';
    for (char *p = h->reason; *p; p++) /* it is printed in logs */
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    if (h->backend > MOS_TP_VERBS || h->slot_bytes < 2 * MOS_TP_PAGE_SIZE ||
        h->slot_bytes > MOS_WIRE_MAX_BULK || h->slot_count < 2 || h->slot_count > 1024 ||
        h->n_qps < 1 || h->n_qps > 16)
        return MOS_E_PROTO;
    return 0;
}
