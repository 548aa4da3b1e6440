/* libFuzzer target: the identity mosd keeps of a registered job, parsed from /proc/PID/status
 * and /proc/PID/stat text (mos_proc_ident_parse). The input is the status text, a NUL, then the
 * stat text. What is accepted must have ids below 2^32 - 1 and a parent pid >= 0, and printed
 * back as status and stat lines it must parse to the same fields. */
#include "mos/procfs.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const struct mos_proc_ident *id)
{
    char status[512], stat_text[512];
    struct mos_proc_ident again;

    snprintf(status, sizeof(status),
             "PPid:\t%d\nUid:\t%u\t%u\t%u\t%u\nGid:\t%u\t%u\t%u\t%u\nCapPrm:\t%016llx\n"
             "CapEff:\t%016llx\nCapAmb:\t%016llx\n",
             (int)id->ppid, (unsigned)id->uid[0], (unsigned)id->uid[1], (unsigned)id->uid[2],
             (unsigned)id->uid[3], (unsigned)id->gid[0], (unsigned)id->gid[1],
             (unsigned)id->gid[2], (unsigned)id->gid[3], (unsigned long long)id->cap_prm,
             (unsigned long long)id->cap_eff, (unsigned long long)id->cap_amb);
    int n = snprintf(stat_text, sizeof(stat_text), "1 (x) S %d", (int)id->ppid);
    for (int f = 5; f <= MOS_PROC_STAT_FIELDS; f++)
        n += snprintf(stat_text + n, sizeof(stat_text) - (size_t)n, " %llu",
                      f == MOS_STAT_STARTTIME ? id->start_time : 0ull);
    if (mos_proc_ident_parse(status, stat_text, &again) != 0 ||
        memcmp(&again, id, sizeof(again)) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 2);
    struct mos_proc_ident id;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = text[size + 1] = '\0';
    const char *stat_text = text + strlen(text) + 1; /* "" when there is no NUL */
    if (mos_proc_ident_parse(text, stat_text, &id) == 0) {
        for (int i = 0; i < MOS_ID_FIELDS; i++)
            if ((unsigned)id.uid[i] == 0xffffffffu || (unsigned)id.gid[i] == 0xffffffffu)
                abort();
        if (id.ppid < 0 || id.status_uid != 0 || id.exe_setid != 0)
            abort();
        check_round_trip(&id);
    }
    free(text);
    return 0;
}
