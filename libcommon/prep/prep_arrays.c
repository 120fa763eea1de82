/* glow-prep data-file inputs, loaded whole into memory:
 *
 * IDX (MNIST, Fashion-MNIST): big-endian magic 0x00000803 (unsigned bytes, 3
 * dimensions) then n, rows, cols and the pixels; labels 0x00000801, n, then one
 * byte each. gzip or plain (zlib's gzread reads both). Without --labels the
 * label file is the sibling named with images -> labels and idx3 -> idx1
 * (train-images-idx3-ubyte.gz -> train-labels-idx1-ubyte.gz), used when present.
 *
 * CIFAR-10 / CIFAR-100 binary batches: records of the label byte(s) and 3072
 * bytes of 32x32 red, green and blue planes; CIFAR-100 has coarse then fine
 * labels, the fine one is used. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "base/mem_budget.h"
#include "base/path.h"
#include "prep_kinds.h"

/* Largest data file loaded (pixels), far above any of these data sets. */
#define ARRAY_MAX_BYTES ((uint64_t)8 << 30)

static int gz_read_all(gzFile gz, uint8_t *dst, uint64_t n, uint64_t *got)
{
    *got = 0;
    while (*got < n) {
        uint64_t k = n - *got;
        if (k > (1u << 30))
            k = 1u << 30;
        int r = gzread(gz, dst + *got, (unsigned)k);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        *got += (uint64_t)r;
    }
    return 0;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const char *gz_reason(gzFile gz)
{
    int code;
    const char *m = gzerror(gz, &code);
    return code == Z_ERRNO ? strerror(errno) : m;
}

/* Open an IDX file and check its magic: expect 3 (images) or 1 (labels) dims. */
static gzFile idx_open(const char *path, int ndim, uint32_t dims[3], glow_error *err)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        glow_errorf(err, "%s: %s", path, errno ? strerror(errno) : "cannot open");
        return NULL;
    }
    gzbuffer(gz, 1 << 17);
    unsigned char h[16];
    int want = 4 + 4 * ndim;
    if (gzread(gz, h, (unsigned)want) != want) {
        glow_errorf(err, "%s: too short for an IDX header", path);
        gzclose(gz);
        return NULL;
    }
    if (h[0] || h[1] || h[2] != 0x08 || h[3] != ndim) {
        glow_errorf(err, "%s: not an IDX %s file (magic %02x%02x%02x%02x, expected 000008%02x)",
                    path, ndim == 3 ? "image" : "label", h[0], h[1], h[2], h[3], ndim);
        gzclose(gz);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        dims[i] = be32(h + 4 + 4 * i);
    return gz;
}

static char *sibling_labels(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *at = strstr(base, "images");
    if (!at)
        return NULL;
    char *s = xstrdup(path);
    memcpy(s + (at - path), "labels", 6);
    char *idx3 = strstr(s + (base - path), "idx3");
    if (idx3)
        idx3[3] = '1';
    struct stat st;
    if (stat(s, &st) != 0 || !S_ISREG(st.st_mode)) {
        free(s);
        return NULL;
    }
    return s;
}

int prep_add_idx(prep_inputs *in, const char *path, const prep_options *opt, glow_error *err)
{
    uint32_t d[3];
    gzFile gz = idx_open(path, 3, d, err);
    if (!gz)
        return -1;
    uint64_t n = d[0], h = d[1], w = d[2], bytes = n * h * w;
    if (n == 0 || h == 0 || w == 0 || h > 65535 || w > 65535 || bytes > ARRAY_MAX_BYTES) {
        glow_errorf(err, "%s: unusable IDX shape %llu x %llu x %llu", path,
                    (unsigned long long)n, (unsigned long long)h, (unsigned long long)w);
        gzclose(gz);
        return -1;
    }
    /* the header's shape, before the data that must back it */
    char what[600];
    snprintf(what, sizeof what, "%s: %llu images of %llux%llu", path, (unsigned long long)n,
             (unsigned long long)h, (unsigned long long)w);
    if (glow_mem_reserve(bytes + n, what, err) != 0) {
        gzclose(gz);
        return -1;
    }
    in->mem += bytes + n;
    uint8_t *data = xmalloc(bytes);
    uint64_t got;
    int rc = gz_read_all(gz, data, bytes, &got);
    if (rc != 0 || got != bytes) {
        if (rc != 0)
            glow_errorf(err, "%s: %s", path, gz_reason(gz));
        else
            glow_errorf(err, "%s: truncated: %llu images of %llux%llu need %llu bytes, found %llu",
                        path, (unsigned long long)n, (unsigned long long)h,
                        (unsigned long long)w, (unsigned long long)bytes,
                        (unsigned long long)got);
        free(data);
        gzclose(gz);
        return -1;
    }
    gzclose(gz);

    char *lpath = opt->labels ? xstrdup(opt->labels) : sibling_labels(path);
    uint8_t *labels = NULL;
    if (lpath) {
        uint32_t ld[3];
        gzFile lg = idx_open(lpath, 1, ld, err);
        rc = lg ? 0 : -1;
        if (rc == 0 && ld[0] != n) {
            glow_errorf(err, "%s: %u labels, but %s has %llu images", lpath, ld[0], path,
                        (unsigned long long)n);
            rc = -1;
        }
        if (rc == 0) {
            labels = xmalloc(n);
            if (gz_read_all(lg, labels, n, &got) != 0 || got != n) {
                glow_errorf(err, "%s: truncated: %llu labels expected, found %llu", lpath,
                            (unsigned long long)n, (unsigned long long)got);
                rc = -1;
            }
        }
        if (lg)
            gzclose(lg);
        if (rc == 0 && !opt->labels && !opt->quiet)
            glow_warn("%s: labels from %s", path, lpath);
    }
    if (rc == 0)
        rc = prep_set_labels(in, path, labels != NULL, err);
    if (rc != 0) {
        free(lpath);
        free(labels);
        free(data);
        return -1;
    }
    prep_array a = {xstrdup(path), 1, (int)h, (int)w, (uint32_t)n, data};
    uint32_t ai = prep_push_array(in, a);
    for (uint32_t i = 0; i < n; i++)
        prep_push(in, NULL, ai, i, labels ? labels[i] : -1);
    free(labels);
    free(lpath);
    return 0;
}

int prep_add_cifar(prep_inputs *in, const char *path, int hundred, glow_error *err)
{
    const size_t px = 3 * 32 * 32, nlab = hundred ? 2 : 1, rec = px + nlab;
    const char *kind = hundred ? "CIFAR-100" : "CIFAR-10";
    FILE *f = fopen(path, "rb");
    if (!f) {
        glow_errorf(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (uint64_t)st.st_size % rec != 0 || (uint64_t)st.st_size / rec > UINT32_MAX ||
        (uint64_t)st.st_size > ARRAY_MAX_BYTES) {
        glow_errorf(err, "%s: size %lld is not a positive multiple of %zu (%s records)", path,
                    (long long)st.st_size, rec, kind);
        fclose(f);
        return -1;
    }
    uint32_t n = (uint32_t)((uint64_t)st.st_size / rec);
    char what[600];
    snprintf(what, sizeof what, "%s: %u %s images", path, n, kind);
    if (glow_mem_reserve((uint64_t)n * (px + 4), what, err) != 0) {
        fclose(f);
        return -1;
    }
    in->mem += (uint64_t)n * (px + 4);
    uint8_t *data = xmalloc((size_t)n * px), *r = xmalloc(rec);
    int32_t *labels = xmalloc((size_t)n * sizeof *labels);
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (read_full(f, r, rec) != rec) {
            glow_errorf(err, "%s: read error at record %u", path, i + 1);
            rc = -1;
            break;
        }
        int label = r[nlab - 1];
        if (label >= (hundred ? 100 : 10)) {
            glow_errorf(err, "%s: record %u: label %d is out of range for %s", path, i + 1, label,
                        kind);
            rc = -1;
        }
        labels[i] = label;
        memcpy(data + (size_t)i * px, r + nlab, px);
    }
    fclose(f);
    free(r);
    if (rc == 0)
        rc = prep_set_labels(in, path, 1, err);
    if (rc != 0) {
        free(data);
        free(labels);
        return -1;
    }
    prep_array a = {xstrdup(path), 3, 32, 32, n, data};
    uint32_t ai = prep_push_array(in, a);
    for (uint32_t i = 0; i < n; i++)
        prep_push(in, NULL, ai, i, labels[i]);
    free(labels);
    return 0;
}
