/* The training data reader: shard files and streams, seeded per-epoch orders,
 * exact resumption from (epoch, offset), sequential reading and the errors. Every
 * image carries its id (label and first two pixels), so the tests can tell which
 * image came where. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "data/dataset.h"
#include "data/shard.h"

#define C 1
#define H 2
#define W 2
#define IMG (C * H * W)

static char tmpdir[256];

/* n images with ids first..first+n-1 (labels too when labels). */
static shard_record make_images(uint32_t first, uint32_t n, int labels, uint32_t h, uint32_t w)
{
    shard_record r = {SHARD_U8, n, C, h, w, NULL, NULL};
    size_t img = (size_t)C * h * w;
    r.data = calloc(n * img, 1);
    if (labels)
        r.labels = malloc(n * sizeof(int32_t));
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *p = (uint8_t *)r.data + i * img;
        p[0] = (uint8_t)((first + i) & 255);
        p[1] = (uint8_t)((first + i) >> 8);
        p[img - 1] = (uint8_t)(first + i) ^ 0x5a;
        if (labels)
            r.labels[i] = (int32_t)(first + i);
    }
    return r;
}

static uint32_t id_of(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

/* Shard files in dir with prefix: ids first.. in files of per_file images. */
static void write_dir(const char *dir, const char *prefix, uint32_t first, uint32_t n,
                      uint64_t per_file, int labels)
{
    glow_error err;
    shard_dir_writer *w = shard_dir_writer_open(dir, prefix, per_file, 3, &err);
    CHECKF(w != NULL, "%s", err.msg);
    shard_record r = make_images(first, n, labels, H, W);
    CHECKF(shard_dir_writer_add(w, &r, &err) == 0, "%s", err.msg);
    int nf;
    CHECKF(shard_dir_writer_close(w, &nf, &err) == 0, "%s", err.msg);
    shard_record_free(&r);
}

static void write_file(const char *path, shard_record *recs, int n)
{
    FILE *f = fopen(path, "wb");
    glow_error err;
    for (int i = 0; i < n; i++)
        CHECKF(shard_write_record(f, &recs[i], &err) == 0, "%s", err.msg);
    fclose(f);
}

static char *path_in(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

/* Draw `total` images in batches of `bs` from the current position; ids and labels. */
static void draw(dataset *d, uint32_t total, uint32_t bs, uint32_t *ids, int32_t *labels)
{
    uint8_t *px = malloc((size_t)bs * IMG);
    int32_t *lb = malloc(bs * sizeof(int32_t));
    glow_error err;
    for (uint32_t got = 0; got < total;) {
        uint32_t n = total - got < bs ? total - got : bs;
        CHECKF(dataset_next_batch(d, n, px, labels ? lb : NULL, &err) == 0, "%s", err.msg);
        for (uint32_t i = 0; i < n; i++) {
            ids[got + i] = id_of(px + i * IMG);
            CHECK(px[i * IMG + IMG - 1] == ((uint8_t)ids[got + i] ^ 0x5a));
            if (labels)
                labels[got + i] = lb[i];
        }
        got += n;
    }
    free(px);
    free(lb);
}

/* Is ids[0..n) a permutation of 0..n-1? */
static int is_perm(const uint32_t *ids, uint32_t n)
{
    char *seen = calloc(n, 1);
    int ok = 1;
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] >= n || seen[ids[i]])
            ok = 0;
        else
            seen[ids[i]] = 1;
    }
    free(seen);
    return ok;
}

static dataset *open_inputs(int n, char **inputs)
{
    glow_error err;
    dataset *d = dataset_open(n, inputs, 0, &err);
    CHECKF(d != NULL, "%s", err.msg);
    return d;
}

/* The shuffled order of 3 epochs over `n` images, drawn in batches of bs. */
static uint32_t *epochs3(dataset *d, uint64_t seed, uint32_t n, uint32_t bs)
{
    glow_error err;
    uint32_t *ids = malloc(3 * n * sizeof *ids);
    CHECKF(dataset_seek(d, seed, 0, 0, &err) == 0, "%s", err.msg);
    draw(d, 3 * n, bs, ids, NULL);
    return ids;
}

/* Checks shared by files and streams: every image once per epoch, orders that
 * depend on seed and epoch, exact resumption, positions. */
static void check_orders(dataset *d, uint32_t n)
{
    glow_error err;
    uint32_t *a = epochs3(d, 5, n, 5);
    for (int e = 0; e < 3; e++)
        CHECKF(is_perm(a + e * n, n), "epoch %d is not a permutation", e);
    CHECK(memcmp(a, a + n, n * sizeof *a) != 0);
    CHECK(memcmp(a + n, a + 2 * n, n * sizeof *a) != 0);
    int sorted = 1;
    for (uint32_t i = 0; i < n; i++)
        sorted &= a[i] == i;
    CHECK(!sorted);

    /* The same seed gives the same order, whatever the batch size. */
    uint32_t *b = epochs3(d, 5, n, 7);
    CHECK(memcmp(a, b, 3 * n * sizeof *a) == 0);
    free(b);
    b = epochs3(d, 6, n, 5);
    CHECK(memcmp(a, b, n * sizeof *a) != 0);
    CHECK(is_perm(b, n));
    free(b);

    /* Resuming at any position continues the identical sequence. */
    uint64_t offs[] = {0, 1, 3, 7, 13, n - 1, n, n + 2};
    for (size_t k = 0; k < sizeof offs / sizeof *offs; k++) {
        uint64_t o = offs[k];
        uint64_t epoch = o / n, off = o % n;
        CHECKF(dataset_seek(d, 5, epoch, off, &err) == 0, "%s", err.msg);
        uint64_t pe, po;
        dataset_position(d, &pe, &po);
        CHECK(pe == epoch && po == off);
        uint32_t got[64];
        uint32_t len = (uint32_t)(2 * n - o < 40 ? 2 * n - o : 40);
        draw(d, len, 4, got, NULL);
        CHECKF(memcmp(got, a + o, len * sizeof *got) == 0, "resume at %llu", (unsigned long long)o);
        dataset_position(d, &pe, &po);
        CHECKF(pe * n + po == o + len, "position %llu:%llu after %u from %llu", (unsigned long long)pe,
               (unsigned long long)po, len, (unsigned long long)o);
    }
    /* An offset past the epoch's end counts into the next epochs. */
    CHECKF(dataset_seek(d, 5, 0, n + 3, &err) == 0, "%s", err.msg);
    uint64_t pe, po;
    dataset_position(d, &pe, &po);
    CHECK(pe == 1 && po == 3);

    /* A batch that ends exactly at the end of an epoch leaves (epoch + 1, 0). */
    CHECKF(dataset_seek(d, 5, 0, 0, &err) == 0, "%s", err.msg);
    uint32_t *all = malloc(n * sizeof *all);
    draw(d, n, n, all, NULL);
    dataset_position(d, &pe, &po);
    CHECK(pe == 1 && po == 0);
    CHECK(memcmp(all, a, n * sizeof *all) == 0);
    free(all);
    free(a);
}

/* Sequential reading gives every image in stored order, then 0; rewind restarts. */
static void check_seq(dataset *d, uint32_t n, uint32_t max)
{
    glow_error err;
    uint8_t *px = malloc((size_t)max * IMG);
    int32_t *lb = malloc(max * sizeof(int32_t));
    for (int pass = 0; pass < 2; pass++) {
        uint32_t seen = 0;
        int r, bad = 0;
        while ((r = dataset_read_seq(d, max, px, lb, &err)) > 0) {
            for (int i = 0; i < r; i++) {
                bad += id_of(px + (size_t)i * IMG) != seen + (uint32_t)i;
                bad += lb[i] != (int32_t)(seen + (uint32_t)i);
            }
            seen += (uint32_t)r;
        }
        CHECKF(r == 0, "%s", err.msg);
        CHECK(bad == 0);
        CHECKF(seen == n, "pass %d: %u of %u images", pass, seen, n);
        CHECK(dataset_read_seq(d, max, px, lb, &err) == 0);
        dataset_rewind(d);
    }
    free(px);
    free(lb);
}

/* R processes with batch bs each, every one with its own reader on the inputs:
 * their slices of each step, in rank order, are the batch of bs*R that one
 * process draws, and every reader stands at the same place after each step; a
 * resume at a step's position goes on alike. Steps cross epochs and files. */
static void check_slices(int ninputs, char **inputs, uint32_t n, uint32_t bs, int R)
{
    glow_error err;
    dataset *one = open_inputs(ninputs, inputs);
    dataset *rank[4];
    for (int r = 0; r < R; r++)
        rank[r] = open_inputs(ninputs, inputs);
    if (!one)
        return;
    const uint32_t global = bs * (uint32_t)R;
    uint8_t *want = malloc((size_t)global * IMG), *got = malloc((size_t)global * IMG);
    int32_t *wl = malloc(global * sizeof(int32_t)), *gl = malloc(global * sizeof(int32_t));
    CHECK(dataset_seek(one, 3, 0, 0, &err) == 0);
    for (int r = 0; r < R; r++)
        CHECK(dataset_seek(rank[r], 3, 0, 0, &err) == 0);
    int steps = (int)(3 * n / global) + 1, same = 1, place = 1;
    for (int st = 0; st < steps; st++) {
        CHECKF(dataset_next_batch(one, global, want, wl, &err) == 0, "%s", err.msg);
        for (int r = 0; r < R; r++)
            CHECKF(dataset_next_slice(rank[r], global, (uint64_t)bs * (uint64_t)r, bs,
                                      got + (size_t)r * bs * IMG, gl + (size_t)r * bs, &err) == 0,
                   "%s", err.msg);
        same &= memcmp(want, got, (size_t)global * IMG) == 0 &&
                memcmp(wl, gl, global * sizeof(int32_t)) == 0;
        uint64_t e0, o0;
        dataset_position(one, &e0, &o0);
        for (int r = 0; r < R; r++) {
            uint64_t e, o;
            dataset_position(rank[r], &e, &o);
            place &= e == e0 && o == o0 && o < n;
        }
        if (st == steps / 2) { /* a resumed process from here on */
            CHECK(dataset_seek(rank[R - 1], 3, e0, o0, &err) == 0);
        }
    }
    CHECKF(same, "%d processes of batch %u: slices differ from the batch of %u", R, bs, global);
    CHECKF(place, "%d processes of batch %u: positions differ", R, bs);
    /* a slice must lie in its batch */
    CHECK(dataset_next_slice(one, 4, 3, 2, got, NULL, &err) == -1);
    dataset_close(one);
    for (int r = 0; r < R; r++)
        dataset_close(rank[r]);
    free(want);
    free(got);
    free(wl);
    free(gl);
}

/* dataset_seq_seek: stored order from any image, across files and at the end. */
static void check_seq_seek(dataset *d, uint32_t n)
{
    glow_error err;
    uint8_t px[IMG * 8];
    uint32_t starts[] = {0, 1, 6, 7, 13, n - 1, n};
    for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++) {
        if (starts[k] > n)
            continue;
        dataset_seq_seek(d, starts[k]);
        int got = dataset_read_seq(d, 8, px, NULL, &err);
        uint32_t want = n - starts[k] < 8 ? n - starts[k] : 8;
        CHECKF(got == (int)want, "from %u: %d images, wanted %u", starts[k], got, want);
        int ok = 1;
        for (int i = 0; i < got; i++)
            ok &= id_of(px + i * IMG) == starts[k] + (uint32_t)i;
        CHECKF(ok, "from %u: not the stored order", starts[k]);
    }
    dataset_rewind(d);
}

static void test_files(void)
{
    /* 25 images in files of 7, 7, 7, 4; 3 more under another prefix; 5 in a file
     * named on its own: 40 in all, in files of different sizes. */
    write_dir(path_in("d"), "a", 0, 25, 7, 1);
    write_dir(path_in("d"), "b", 25, 3, 7, 1);
    shard_record extra[2] = {make_images(28, 5, 1, H, W), make_images(33, 7, 1, H, W)};
    write_file(path_in("extra.glow"), extra, 2);
    shard_record_free(&extra[0]);
    shard_record_free(&extra[1]);

    char *inputs[] = {path_in("d"), path_in("extra.glow")};
    dataset *d = open_inputs(2, inputs);
    if (!d)
        return;
    const dataset_info *in = dataset_get_info(d);
    CHECK(in->n_images == 40);
    CHECK(in->c == C && in->h == H && in->w == W);
    CHECK(in->has_labels == 1);
    CHECK(in->from_stream == 0);
    check_orders(d, 40);

    /* Labels travel with their images. */
    glow_error err;
    uint32_t ids[40];
    int32_t labels[40];
    CHECKF(dataset_seek(d, 9, 0, 0, &err) == 0, "%s", err.msg);
    draw(d, 40, 6, ids, labels);
    int ok = 1;
    for (int i = 0; i < 40; i++)
        ok &= labels[i] == (int32_t)ids[i];
    CHECK(ok);

    check_seq(d, 40, 6);
    check_seq(d, 40, 100);
    check_seq_seek(d, 40);
    check_slices(2, inputs, 40, 4, 2);
    check_slices(2, inputs, 40, 3, 3);
    check_slices(2, inputs, 40, 16, 4); /* a step longer than any file */

    /* Sequential reading in between does not disturb the shuffled reader. */
    CHECKF(dataset_seek(d, 5, 0, 0, &err) == 0, "%s", err.msg);
    uint32_t first[10], rest[30], want[40];
    draw(d, 10, 10, first, NULL);
    uint8_t px[IMG * 16];
    CHECK(dataset_read_seq(d, 16, px, NULL, &err) == 16);
    draw(d, 30, 10, rest, NULL);
    CHECKF(dataset_seek(d, 5, 0, 0, &err) == 0, "%s", err.msg);
    draw(d, 40, 40, want, NULL);
    CHECK(memcmp(first, want, sizeof first) == 0);
    CHECK(memcmp(rest, want + 10, sizeof rest) == 0);
    dataset_close(d);

    /* Data without labels: labels come back as 0 when asked for. */
    write_dir(path_in("nolab"), "x", 0, 9, 4, 0);
    char *nl[] = {path_in("nolab")};
    d = open_inputs(1, nl);
    if (d) {
        CHECK(dataset_get_info(d)->has_labels == 0);
        CHECKF(dataset_seek(d, 1, 0, 0, &err) == 0, "%s", err.msg);
        int32_t lb[9];
        draw(d, 9, 9, ids, lb);
        int zero = 1;
        for (int i = 0; i < 9; i++)
            zero &= lb[i] == 0;
        CHECK(zero);
        CHECK(is_perm(ids, 9));
        dataset_close(d);
    }
}

static void test_stream(void)
{
    shard_record recs[3] = {make_images(0, 10, 1, H, W), make_images(10, 1, 1, H, W),
                            make_images(11, 19, 1, H, W)};
    write_file(path_in("stream.glow"), recs, 3);
    for (int i = 0; i < 3; i++)
        shard_record_free(&recs[i]);

    glow_error err;
    CHECK(freopen(path_in("stream.glow"), "rb", stdin) != NULL);
    dataset *d = dataset_open(0, NULL, 1 << 20, &err);
    CHECKF(d != NULL, "%s", err.msg);
    if (d) {
        CHECK(dataset_get_info(d)->n_images == 30);
        CHECK(dataset_get_info(d)->from_stream == 1);
        check_orders(d, 30);
        check_seq(d, 30, 4);
        check_seq_seek(d, 30);
        dataset_close(d);
    }

    /* "-" is the stream too. */
    CHECK(freopen(path_in("stream.glow"), "rb", stdin) != NULL);
    char *dash[] = {"-"};
    d = dataset_open(1, dash, 0, &err);
    CHECKF(d != NULL, "%s", err.msg);
    if (d) {
        CHECK(dataset_get_info(d)->n_images == 30);
        dataset_close(d);
    }

    /* Past the memory limit: an error that points to shard files. */
    CHECK(freopen(path_in("stream.glow"), "rb", stdin) != NULL);
    d = dataset_open(0, NULL, 100, &err);
    CHECK(d == NULL);
    CHECKF(strstr(err.msg, "glow-prep -o DIR") != NULL, "%s", err.msg);
    dataset_close(d);

    /* An empty stream. */
    fclose(fopen(path_in("empty"), "wb"));
    CHECK(freopen(path_in("empty"), "rb", stdin) != NULL);
    d = dataset_open(0, NULL, 0, &err);
    CHECK(d == NULL);
    CHECKF(strstr(err.msg, "standard input: no images") != NULL, "%s", err.msg);

    /* float32 on a stream. */
    shard_record f = {SHARD_F32, 2, C, H, W, NULL, calloc(2 * IMG, sizeof(float))};
    write_file(path_in("f32.glow"), &f, 1);
    CHECK(freopen(path_in("f32.glow"), "rb", stdin) != NULL);
    d = dataset_open(0, NULL, 0, &err);
    CHECK(d == NULL);
    CHECKF(strstr(err.msg, "float32") != NULL && strstr(err.msg, "standard input") != NULL,
           "%s", err.msg);
    shard_record_free(&f);
}

static void expect_open_error(int n, char **inputs, const char *want)
{
    glow_error err;
    dataset *d = dataset_open(n, inputs, 0, &err);
    CHECKF(d == NULL, "opened, wanted: %s", want);
    if (d)
        dataset_close(d);
    else
        CHECKF(strstr(err.msg, want) != NULL, "got '%s', wanted '%s'", err.msg, want);
}

static void test_errors(void)
{
    /* Mixed shapes across files. */
    shard_record a = make_images(0, 3, 0, H, W), b = make_images(0, 2, 0, 3, 3);
    write_file(path_in("s22.glow"), &a, 1);
    write_file(path_in("s33.glow"), &b, 1);
    char *mixed[] = {path_in("s22.glow"), path_in("s33.glow")};
    expect_open_error(2, mixed, "differ");
    /* Labels in one file, none in the other. */
    shard_record l = make_images(0, 2, 1, H, W);
    write_file(path_in("lab.glow"), &l, 1);
    char *mixlab[] = {path_in("s22.glow"), path_in("lab.glow")};
    expect_open_error(2, mixlab, "with labels");
    shard_record_free(&a);
    shard_record_free(&b);
    shard_record_free(&l);

    /* float32 files. */
    shard_record f = {SHARD_F32, 2, C, H, W, NULL, calloc(2 * IMG, sizeof(float))};
    write_file(path_in("f.glow"), &f, 1);
    char *ff[] = {path_in("f.glow")};
    expect_open_error(1, ff, "float32");
    shard_record_free(&f);

    /* No images: an empty file, an empty directory, a missing path. */
    fclose(fopen(path_in("none.glow"), "wb"));
    char *none[] = {path_in("none.glow")};
    expect_open_error(1, none, "no images");
    mkdir(path_in("emptydir"), 0777);
    char *ed[] = {path_in("emptydir")};
    expect_open_error(1, ed, "no shard files");
    char *missing[] = {path_in("missing.glow")};
    expect_open_error(1, missing, "no such file");
    /* Standard input cannot join files. */
    char *mixstd[] = {path_in("s22.glow"), "-"};
    expect_open_error(2, mixstd, "standard input");

    /* A damaged file is reported with its name when it is read. */
    shard_record g = make_images(0, 4, 0, H, W);
    write_file(path_in("bad.glow"), &g, 1);
    shard_record_free(&g);
    glow_error err;
    char *bad[] = {path_in("bad.glow")};
    dataset *d = dataset_open(1, bad, 0, &err);
    CHECKF(d != NULL, "%s", err.msg);
    if (d) {
        FILE *fp = fopen(path_in("bad.glow"), "r+b");
        fseek(fp, SHARD_HEADER_SIZE + 2, SEEK_SET);
        fputc(0xff, fp);
        fputc(0x00, fp);
        fclose(fp);
        uint8_t px[IMG * 4];
        int r = dataset_seek(d, 1, 0, 0, &err);
        if (r == 0)
            r = dataset_next_batch(d, 4, px, NULL, &err);
        CHECK(r == -1);
        CHECKF(strstr(err.msg, "bad.glow") != NULL, "%s", err.msg);
        dataset_close(d);
    }
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_dataset.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_files();
    test_stream();
    test_errors();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
