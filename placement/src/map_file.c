/* Reading matrix and hosts files from disk; errors logged once with the file's name. */
#include "mos/placement_map.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define COMP "placement"
#define MAX_FILE_BYTES (512ull << 20)

/* The whole file in memory. 0, or -errno / MOS_E_LIMIT, logged. */
static int read_whole(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "re");
    struct stat st;
    char *buf;
    int rc;

    if (!f) {
        rc = mos_errno_status();
        mos_err(COMP, "%s: %s", path, strerror(-rc));
        return rc;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        mos_err(COMP, "%s: not a regular file", path);
        rc = -EINVAL;
        goto close_file;
    }
    if ((unsigned long long)st.st_size > MAX_FILE_BYTES) {
        mos_err(COMP, "%s: larger than %llu MiB", path, MAX_FILE_BYTES >> 20);
        rc = MOS_E_LIMIT;
        goto close_file;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = -ENOMEM;
        goto close_file;
    }
    *len = fread(buf, 1, (size_t)st.st_size, f);
    if (ferror(f)) {
        rc = -EIO;
        mos_err(COMP, "%s: read error", path);
        free(buf);
        goto close_file;
    }
    buf[*len] = '\0';
    *text = buf;
    rc = 0;
close_file:
    fclose(f);
    return rc;
}

/* Read `path` and parse it with the parser of `kind`; one logged line on error. */
enum file_kind { FILE_MATRIX, FILE_HOSTS };

static int load_parsed(const char *path, enum file_kind kind, void *out)
{
    char *text = NULL, err[512];
    size_t len = 0;
    int rc = read_whole(path, &text, &len);

    if (rc != 0)
        return rc;
    rc = kind == FILE_MATRIX ? mos_comm_matrix_parse(text, len, path, out, err, sizeof(err))
                             : mos_host_list_parse(text, len, path, out, err, sizeof(err));
    if (rc != 0)
        mos_err(COMP, "%s", err);
    free(text);
    return rc;
}

int mos_comm_matrix_load(const char *path, struct mos_comm_matrix *out)
{
    return load_parsed(path, FILE_MATRIX, out);
}

int mos_host_list_load(const char *path, struct mos_host_list *out)
{
    return load_parsed(path, FILE_HOSTS, out);
}
