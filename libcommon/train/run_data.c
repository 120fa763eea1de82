#include "run_data.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/atomic_file.h"
#include "base/path.h"

#define CRC_MAX_IMAGES 1024
#define CRC_MAX_BYTES ((uint64_t)4 << 20)

/* An absolute form of a path that exists (else as given). */
static char *absolute(const char *p)
{
    if (!strcmp(p, "-"))
        return xstrdup(p);
    char *r = realpath(p, NULL);
    return r ? r : xstrdup(p);
}

int glow_data_print_make(dataset *d, int n, char *const *inputs, uint64_t crc_images,
                         glow_data_print *p, glow_error *err)
{
    memset(p, 0, sizeof *p);
    const dataset_info *in = dataset_get_info(d);
    p->n_inputs = n ? n : 1;
    p->inputs = xcalloc((size_t)p->n_inputs, sizeof *p->inputs);
    for (int i = 0; i < p->n_inputs; i++)
        p->inputs[i] = absolute(n ? inputs[i] : "-");
    p->images = in->n_images;
    p->c = in->c;
    p->h = in->h;
    p->w = in->w;
    p->labels = in->has_labels;
    const uint64_t D = (uint64_t)in->c * in->h * in->w;
    if (!crc_images) {
        crc_images = CRC_MAX_BYTES / (D ? D : 1);
        if (crc_images > CRC_MAX_IMAGES)
            crc_images = CRC_MAX_IMAGES;
        if (crc_images < 1)
            crc_images = 1;
    }
    if (crc_images > in->n_images)
        crc_images = in->n_images;
    p->crc_images = crc_images;
    const uint32_t chunk = 64;
    uint8_t *px = xmalloc((size_t)chunk * D);
    int32_t *lb = xcalloc(chunk, sizeof *lb);
    uLong crc = crc32(0L, Z_NULL, 0), lcrc = crc32(0L, Z_NULL, 0);
    uint64_t done = 0;
    int got = 0;
    dataset_rewind(d);
    while (done < crc_images &&
           (got = dataset_read_seq(d, crc_images - done < chunk ? (uint32_t)(crc_images - done) : chunk,
                                   px, lb, err)) > 0) {
        crc = crc32_z(crc, px, (z_size_t)((uint64_t)got * D));
        for (int i = 0; i < got && p->labels; i++) {
            unsigned char le[4];
            store_le32(le, (uint32_t)lb[i]);
            lcrc = crc32_z(lcrc, le, 4);
        }
        done += (uint64_t)got;
    }
    dataset_rewind(d);
    free(px);
    free(lb);
    if (got < 0) {
        glow_data_print_free(p);
        return -1;
    }
    p->crc32 = (uint32_t)(p->labels ? crc32_combine(crc, lcrc, (z_off_t)done * 4) : crc);
    return 0;
}

static void shape_text(const glow_data_print *p, char *buf, size_t n)
{
    snprintf(buf, n, "%llu images of %ux%ux%u%s", (unsigned long long)p->images, p->c, p->h, p->w,
             p->labels ? " with labels" : "");
}

int glow_data_print_same(const glow_data_print *a, const glow_data_print *b, char *why, size_t n)
{
    char sa[96], sb[96];
    shape_text(a, sa, sizeof sa);
    shape_text(b, sb, sizeof sb);
    if (strcmp(sa, sb) != 0) {
        snprintf(why, n, "%s where the run has %s", sa, sb);
        return 0;
    }
    if (a->crc_images != b->crc_images || a->crc32 != b->crc32) {
        snprintf(why, n, "the first %llu images differ (CRC-32 %08x where the run has %08x)",
                 (unsigned long long)b->crc_images, a->crc32, b->crc32);
        return 0;
    }
    return 1;
}

void glow_data_print_describe(const glow_data_print *p, char *buf, size_t n)
{
    shape_text(p, buf, n);
    size_t o = strlen(buf);
    for (int i = 0; i < p->n_inputs && o < n; i++) {
        o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : " from ",
                              strcmp(p->inputs[i], "-") ? p->inputs[i] : "standard input");
    }
}

void glow_data_print_free(glow_data_print *p)
{
    for (int i = 0; i < p->n_inputs; i++)
        free(p->inputs[i]);
    free(p->inputs);
    memset(p, 0, sizeof *p);
}

void glow_data_print_copy(glow_data_print *dst, const glow_data_print *src)
{
    *dst = *src;
    dst->inputs = xcalloc((size_t)src->n_inputs + 1, sizeof *dst->inputs);
    for (int i = 0; i < src->n_inputs; i++)
        dst->inputs[i] = xstrdup(src->inputs[i]);
}

/* ---- data.json ---- */

static cJSON *print_json(const glow_data_print *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *in = cJSON_AddArrayToObject(o, "inputs");
    for (int i = 0; i < p->n_inputs; i++)
        cJSON_AddItemToArray(in, cJSON_CreateString(p->inputs[i]));
    cJSON_AddNumberToObject(o, "images", (double)p->images);
    cJSON *sh = cJSON_AddArrayToObject(o, "shape");
    cJSON_AddItemToArray(sh, cJSON_CreateNumber(p->c));
    cJSON_AddItemToArray(sh, cJSON_CreateNumber(p->h));
    cJSON_AddItemToArray(sh, cJSON_CreateNumber(p->w));
    cJSON_AddBoolToObject(o, "labels", p->labels);
    cJSON_AddNumberToObject(o, "crc_images", (double)p->crc_images);
    char crc[16];
    snprintf(crc, sizeof crc, "%08x", p->crc32);
    cJSON_AddStringToObject(o, "crc32", crc);
    return o;
}

static int count_of(const cJSON *o, const char *key, double max, uint64_t *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > max ||
        it->valuedouble != (double)(uint64_t)it->valuedouble)
        return -1;
    *v = (uint64_t)it->valuedouble;
    return 0;
}

static int print_from_json(const cJSON *o, glow_data_print *p)
{
    memset(p, 0, sizeof *p);
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "inputs");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(o, "shape");
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(o, "labels");
    const cJSON *crc = cJSON_GetObjectItemCaseSensitive(o, "crc32");
    if (!cJSON_IsObject(o) || !cJSON_IsArray(in) || cJSON_GetArraySize(in) < 1 ||
        !cJSON_IsArray(sh) || cJSON_GetArraySize(sh) != 3 || !cJSON_IsBool(lb) ||
        !cJSON_IsString(crc))
        return -1;
    uint64_t dims[3], images, ci;
    for (int i = 0; i < 3; i++) {
        const cJSON *d = cJSON_GetArrayItem(sh, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > 65536)
            return -1;
        dims[i] = (uint64_t)d->valuedouble;
    }
    if (count_of(o, "images", 9e15, &images) || count_of(o, "crc_images", 9e15, &ci))
        return -1;
    char *end;
    unsigned long c = strtoul(crc->valuestring, &end, 16);
    if (*end || !*crc->valuestring || c > 0xffffffffUL)
        return -1;
    p->n_inputs = cJSON_GetArraySize(in);
    p->inputs = xcalloc((size_t)p->n_inputs, sizeof *p->inputs);
    int i = 0;
    for (const cJSON *it = in->child; it; it = it->next, i++) {
        if (!cJSON_IsString(it)) {
            glow_data_print_free(p);
            return -1;
        }
        p->inputs[i] = xstrdup(it->valuestring);
    }
    p->images = images;
    p->c = (uint32_t)dims[0];
    p->h = (uint32_t)dims[1];
    p->w = (uint32_t)dims[2];
    p->labels = cJSON_IsTrue(lb);
    p->crc_images = ci;
    p->crc32 = (uint32_t)c;
    return 0;
}

int glow_run_data_read(const char *dir, glow_run_data *rd, glow_error *err)
{
    memset(rd, 0, sizeof *rd);
    char *path = glow_path_join(dir, "data.json");
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        free(path);
        if (e == ENOENT)
            return 0;
        glow_errorf(err, "%s/data.json: %s", dir, strerror(e));
        return -1;
    }
    size_t cap = 1 << 16, n = 0, got;
    char *buf = xmalloc(cap + 1);
    while ((got = read_full(f, buf + n, cap - n)) == cap - n && cap < ((size_t)64 << 20)) {
        n = cap;
        cap *= 2;
        buf = xrealloc(buf, cap + 1);
    }
    n += got;
    fclose(f);
    buf[n] = '\0';
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "train");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "val");
    int rc = 1;
    if (!cJSON_IsObject(root) || print_from_json(t, &rd->train) != 0)
        rc = -1;
    else if (v && !cJSON_IsNull(v) && print_from_json(v, &rd->val) != 0)
        rc = -1;
    else {
        rd->has_train = 1;
        rd->has_val = v && !cJSON_IsNull(v);
    }
    cJSON_Delete(root);
    if (rc < 0) {
        glow_run_data_free(rd);
        glow_errorf(err, "%s: malformed (expected the record glow-train writes: train and val "
                         "with inputs, images, shape, labels, crc_images, crc32)",
                    path);
    }
    free(path);
    return rc;
}

int glow_run_data_write(const char *dir, const glow_run_data *rd, glow_error *err)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "train", print_json(&rd->train));
    if (rd->has_val)
        cJSON_AddItemToObject(o, "val", print_json(&rd->val));
    else
        cJSON_AddNullToObject(o, "val");
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    char *path = glow_path_join(dir, "data.json");
    atomic_file af;
    int rc = atomic_open(&af, path, err);
    if (rc == 0) {
        fputs(text, af.f);
        fputc('\n', af.f);
        rc = atomic_commit(&af, err);
    }
    free(path);
    free(text);
    return rc;
}

void glow_run_data_free(glow_run_data *rd)
{
    glow_data_print_free(&rd->train);
    glow_data_print_free(&rd->val);
    memset(rd, 0, sizeof *rd);
}
