/* st_load_meta: the metadata of a safetensors file from its header alone. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "safetensors.h"

#define META_MAX_HEADER (100u * 1000u * 1000u) /* as st_load's */

int st_load_meta(const char *path, st_file *f, glow_error *err)
{
    memset(f, 0, sizeof *f);
    FILE *in = fopen(path, "rb");
    if (!in) {
        glow_errorf(err, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    unsigned char len8[8];
    if (fstat(fileno(in), &st) != 0 || read_full(in, len8, 8) != 8) {
        glow_errorf(err, "%s: truncated: no header length", path);
        fclose(in);
        return -1;
    }
    uint64_t hlen = load_le64(len8);
    if (hlen > META_MAX_HEADER || hlen > (uint64_t)st.st_size - 8 || hlen < 2) {
        glow_errorf(err, "%s: bad header length %llu", path, (unsigned long long)hlen);
        fclose(in);
        return -1;
    }
    char *hdr = xmalloc((size_t)hlen + 1);
    size_t got = read_full(in, hdr, (size_t)hlen);
    fclose(in);
    hdr[got] = '\0';
    cJSON *root = got == hlen ? cJSON_ParseWithLength(hdr, (size_t)hlen) : NULL;
    free(hdr);
    if (!cJSON_IsObject(root)) {
        glow_errorf(err, "%s: header is not a JSON object", path);
        cJSON_Delete(root);
        return -1;
    }
    f->path = xstrdup(path);
    f->size = (size_t)st.st_size;
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    int n = cJSON_IsObject(md) ? cJSON_GetArraySize(md) : 0;
    f->meta_keys = xcalloc((size_t)n + 1, sizeof *f->meta_keys);
    f->meta_vals = xcalloc((size_t)n + 1, sizeof *f->meta_vals);
    for (const cJSON *it = n ? md->child : NULL; it; it = it->next) {
        if (!cJSON_IsString(it)) {
            glow_errorf(err, "%s: metadata '%s' is not a string", path, it->string);
            cJSON_Delete(root);
            st_free(f);
            return -1;
        }
        f->meta_keys[f->n_meta] = xstrdup(it->string);
        f->meta_vals[f->n_meta] = xstrdup(it->valuestring);
        f->n_meta++;
    }
    cJSON_Delete(root);
    return 0;
}
