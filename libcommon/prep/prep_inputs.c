/* glow-prep inputs: recognising each input and handing it to its kind. */
#include "prep_inputs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data/image.h"
#include "data/shard.h"
#include "prep_kinds.h"

static const struct {
    const char *name;
    prep_format f;
} format_names[] = {{"csv", PREP_CSV},           {"list", PREP_LIST},        {"dir", PREP_DIR},
                    {"idx", PREP_IDX},           {"cifar", PREP_CIFAR10},    {"cifar10", PREP_CIFAR10},
                    {"cifar100", PREP_CIFAR100}, {"image", PREP_IMAGE},      {"shard", PREP_SHARD},
                    {"auto", PREP_AUTO}};

int prep_parse_format(const char *s, prep_format *f)
{
    for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++)
        if (!strcmp(s, format_names[i].name)) {
            *f = format_names[i].f;
            return 0;
        }
    return -1;
}

const char *prep_format_name(prep_format f)
{
    for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++)
        if (format_names[i].f == f && strcmp(format_names[i].name, "cifar"))
            return format_names[i].name;
    return "?";
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* The first line names a path column: a CSV header, not a list of paths. */
static int looks_like_csv_header(const char *line)
{
    if (!strchr(line, ','))
        return 0;
    const char *names[] = {"name", "filename", "path", "file"};
    char *copy = xstrdup(line), *save = NULL;
    int found = 0;
    for (char *tok = strtok_r(copy, ",\r\n", &save); tok && !found;
         tok = strtok_r(NULL, ",\r\n", &save)) {
        while (*tok == ' ' || *tok == '"')
            tok++;
        size_t n = strlen(tok);
        while (n && (tok[n - 1] == ' ' || tok[n - 1] == '"'))
            tok[--n] = '\0';
        for (size_t i = 0; i < 4; i++)
            found |= strcasecmp(tok, names[i]) == 0;
    }
    free(copy);
    return found;
}

int prep_detect(prep_inputs *in, const char *path, prep_format *f, glow_error *err)
{
    if (!strcmp(path, "-")) {
        /* a shard stream by its magic; otherwise a list, refined to CSV by its
         * first line in prep_add_text */
        *f = prep_stdin_is_shard(in) ? PREP_SHARD : PREP_LIST;
        return 0;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        glow_errorf(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        *f = PREP_DIR;
        return 0;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        glow_errorf(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char head[512];
    size_t n = read_full(fp, head, sizeof head - 1);
    fclose(fp);
    head[n] = 0;

    unsigned char magic[4] = {0};
    int have_magic = 0;
    if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b) {
        gzFile gz = gzopen(path, "rb");
        have_magic = gz && gzread(gz, magic, 4) == 4;
        if (gz)
            gzclose(gz);
        if (!have_magic || magic[0] || magic[1] || magic[2] != 0x08) {
            glow_errorf(err, "%s: a gzip file that holds no IDX data", path);
            return -1;
        }
    } else if (n >= 4) {
        memcpy(magic, head, 4);
        have_magic = magic[0] == 0 && magic[1] == 0 && magic[2] == 0x08;
    }
    if (n >= 8 && !memcmp(head, SHARD_MAGIC, 8)) {
        *f = PREP_SHARD;
        return 0;
    }
    if (have_magic) {
        if (magic[3] == 3) {
            *f = PREP_IDX;
            return 0;
        }
        if (magic[3] == 1) {
            glow_errorf(err, "%s: an IDX label file; give the images file (its labels are "
                             "found beside it, or give --labels)", path);
            return -1;
        }
        glow_errorf(err, "%s: IDX data of %d dimensions, expected 3 (images)", path, magic[3]);
        return -1;
    }
    /* An image by its signature, or by its name: a file called .png that holds
     * no image (empty, text) is a bad image named as such, not a list. */
    if (image_is_png(head, n) || image_is_jpeg(head, n) || ends_with(path, ".png") ||
        ends_with(path, ".jpg") || ends_with(path, ".jpeg")) {
        *f = PREP_IMAGE;
        return 0;
    }
    if (ends_with(path, ".bin")) {
        if (st.st_size > 0 && st.st_size % 3073 == 0) {
            *f = PREP_CIFAR10;
            return 0;
        }
        if (st.st_size > 0 && st.st_size % 3074 == 0) {
            *f = PREP_CIFAR100;
            return 0;
        }
        glow_errorf(err, "%s: size %lld is a multiple of neither 3073 (CIFAR-10) nor 3074 "
                         "(CIFAR-100); give --format", path, (long long)st.st_size);
        return -1;
    }
    if (ends_with(path, ".csv")) {
        *f = PREP_CSV;
        return 0;
    }
    if (memchr(head, 0, n)) {
        glow_errorf(err, "%s: not a recognised input (binary data that is not PNG, JPEG, IDX, "
                         "CIFAR or a shard stream); give --format", path);
        return -1;
    }
    /* The first line decides between a CSV with a header and a plain list. */
    char *nl = strchr((char *)head, '\n');
    if (nl)
        *nl = 0;
    *f = looks_like_csv_header((char *)head) ? PREP_CSV : PREP_LIST;
    return 0;
}

int prep_inputs_add(prep_inputs *in, const char *path, const prep_options *opt, glow_error *err)
{
    prep_format f = opt->format;
    if (f == PREP_AUTO && prep_detect(in, path, &f, err) != 0)
        return -1;
    if (opt->labels_from_dirs && f != PREP_DIR) {
        glow_errorf(err, "%s: --labels-from-dirs needs a directory input, this is %s input",
                    path, prep_format_name(f));
        return -1;
    }
    if (opt->labels && f != PREP_IDX) {
        glow_errorf(err, "%s: --labels is for IDX images, this is %s input", path,
                    prep_format_name(f));
        return -1;
    }
    switch (f) {
    case PREP_CSV:
    case PREP_LIST:
        return prep_add_text(in, path, f, opt, err);
    case PREP_DIR:
        return prep_add_dir(in, path, opt, err);
    case PREP_IDX:
        return prep_add_idx(in, path, opt, err);
    case PREP_CIFAR10:
    case PREP_CIFAR100:
        return prep_add_cifar(in, path, f == PREP_CIFAR100, err);
    case PREP_IMAGE:
        if (prep_set_labels(in, path, 0, err) != 0)
            return -1;
        prep_push(in, xstrdup(path), 0, 0, -1);
        return 0;
    case PREP_SHARD:
        return prep_add_shard(in, path, err);
    case PREP_AUTO:
        break;
    }
    glow_errorf(err, "%s: unknown input format", path);
    return -1;
}
