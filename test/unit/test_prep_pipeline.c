/* glow-prep's pipeline (libcommon/prep/prep_pipeline.h) and output helpers:
 * the same bytes for every thread count, list order kept, bad images reported
 * in order and skipped (or fatal under strict), the split, padding, the order
 * (shuffle, limit) and the channels chosen, the sinks of -o DIR and the class
 * mapping file. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "data/shard.h"
#include "prep/prep_output.h"
#include "prep/prep_pipeline.h"

static char tmpdir[256];

#define C 1
#define H 5
#define W 5
#define IMG (C * H * W)

/* n images of one array, image i filled with byte i, labels i % 4 (or none);
 * with a missing file after every bad_every-th image (0: none). */
static void make_inputs(prep_inputs *in, uint32_t n, int labels, uint32_t bad_every)
{
    prep_inputs_init(in);
    prep_array a = {strdup("arr.idx"), C, H, W, n, malloc((size_t)n * IMG)};
    for (uint32_t i = 0; i < n; i++)
        memset(a.data + (size_t)i * IMG, (int)(i & 0xff), IMG);
    uint32_t k = prep_push_array(in, a);
    in->labels = labels;
    for (uint32_t i = 0; i < n; i++) {
        prep_push(in, NULL, k, i, labels ? (int32_t)(i % 4) : -1);
        if (bad_every && i % bad_every == bad_every - 1) {
            char p[300];
            snprintf(p, sizeof p, "%s/missing%u.png", tmpdir, i);
            prep_push(in, strdup(p), 0, 0, labels ? 0 : -1);
        }
    }
}

typedef struct {
    int nbad;
    char first_bad[512];
    uint64_t last_done, last_total;
    int calls;
} seen;

static void on_bad(void *ctx, const char *name, const char *why)
{
    seen *s = ctx;
    if (s->nbad++ == 0)
        snprintf(s->first_bad, sizeof s->first_bad, "%s: %s", name, why);
}

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    seen *s = ctx;
    CHECK(done >= s->last_done && done <= total);
    s->last_done = done;
    s->last_total = total;
    s->calls++;
}

typedef struct {
    char *train, *val;
    size_t ntrain, nval;
    int rc;
    prep_pipeline_result res;
    seen s;
} run_out;

/* The pipeline over in (order 0..n-1) into two memory streams. */
static run_out run(const prep_inputs *in, int jobs, int strict, double split, int pad)
{
    run_out r;
    memset(&r, 0, sizeof r);
    FILE *tf = open_memstream(&r.train, &r.ntrain), *vf = open_memstream(&r.val, &r.nval);
    prep_sink train = {0}, val = {0};
    train.f = tf;
    train.dest = "train";
    if (split > 0) {
        val.f = vf;
        val.dest = "val";
    }
    uint32_t n;
    uint32_t *order = prep_order(in, 0, 0, 0, &n);
    uint64_t ntrain = split > 0 ? (uint64_t)(split * n + 0.5) : n;
    prep_pipeline pp = {prep_output_channels(in, order, n, 0), 0, 0, 0, pad, jobs, strict, 0,
                        on_bad, on_progress, &r.s};
    prep_writer wr;
    prep_writer_start(&wr);
    glow_error err;
    r.rc = prep_pipeline_run(&pp, in, order, n, ntrain, &wr, &train, &val, &r.res, &err);
    if (r.rc == 0 && train.images + val.images > 0)
        CHECKF(prep_sinks_finish(&wr, &train, &val, &err) == 0, "%s", err.msg);
    else {
        prep_sink_abort(&wr, &train);
        prep_sink_abort(&wr, &val);
    }
    prep_writer_stop(&wr);
    fclose(tf);
    fclose(vf);
    free(order);
    return r;
}

static void run_free(run_out *r)
{
    free(r->train);
    free(r->val);
}

/* Reads a stream back: images (first byte of each) and labels, in order. */
static uint32_t read_back(const char *buf, size_t len, uint8_t *first, int32_t *labels,
                          uint32_t max, uint32_t *c, uint32_t *h, uint32_t *w)
{
    FILE *f = fmemopen((void *)buf, len, "rb");
    shard_reader *rd = shard_reader_from_file(f, "mem");
    shard_record rec;
    glow_error err;
    uint32_t n = 0;
    int rc;
    while ((rc = shard_reader_next(rd, &rec, &err)) == 1) {
        *c = rec.c;
        *h = rec.h;
        *w = rec.w;
        size_t img = (size_t)rec.c * rec.h * rec.w;
        for (uint32_t i = 0; i < rec.n && n < max; i++, n++) {
            first[n] = ((const uint8_t *)rec.data)[i * img];
            labels[n] = rec.labels ? rec.labels[i] : -1;
        }
        shard_record_free(&rec);
    }
    CHECKF(rc == 0, "%s", err.msg);
    shard_reader_close(rd);
    fclose(f);
    return n;
}

static void test_same_bytes(void)
{
    prep_inputs in;
    make_inputs(&in, 2500, 1, 0);
    run_out a = run(&in, 1, 0, 0, 0);
    CHECK(a.rc == 0 && a.ntrain > 0);
    CHECK(a.res.c == C && a.res.h == H && a.res.w == W && a.res.skipped == 0);
    CHECK(a.s.last_done == 2500 && a.s.last_total == 2500 && a.s.calls == 10);
    for (int jobs = 2; jobs <= 5; jobs += 3) {
        run_out b = run(&in, jobs, 0, 0, 0);
        CHECKF(b.ntrain == a.ntrain && !memcmp(a.train, b.train, a.ntrain), "-j %d", jobs);
        run_free(&b);
    }
    static uint8_t first[3000];
    static int32_t labels[3000];
    uint32_t c, h, w;
    uint32_t n = read_back(a.train, a.ntrain, first, labels, 3000, &c, &h, &w);
    CHECK(n == 2500 && c == C && h == H && w == W);
    int ok = 1;
    for (uint32_t i = 0; i < n; i++)
        ok &= first[i] == (uint8_t)(i & 0xff) && labels[i] == (int32_t)(i % 4);
    CHECK(ok); /* list order, labels with their images */
    run_free(&a);
    prep_inputs_free(&in);
}

static void test_bad_and_split(void)
{
    prep_inputs in;
    make_inputs(&in, 40, 0, 10); /* a missing file after images 9, 19, 29, 39 */
    run_out a = run(&in, 3, 0, 0.5, 1);
    CHECK(a.rc == 0);
    CHECK(a.res.skipped == 4 && a.s.nbad == 4);
    char want[400];
    snprintf(want, sizeof want, "%s/missing9.png: ", tmpdir);
    CHECKF(!strncmp(a.s.first_bad, want, strlen(want)), "%s", a.s.first_bad);
    CHECK(a.res.c == 3 && a.res.h == H + 2 && a.res.w == W + 2); /* files: RGB; padded */
    static uint8_t first[64];
    static int32_t labels[64];
    uint32_t c, h, w;
    /* 44 items, the first 22 positions to train: images 0..19 (two missing among them) */
    uint32_t nt = read_back(a.train, a.ntrain, first, labels, 64, &c, &h, &w);
    CHECK(nt == 20);
    CHECK(first[0] == 0); /* the padding */
    uint32_t nv = read_back(a.val, a.nval, first, labels, 64, &c, &h, &w);
    CHECK(nv == 20);
    run_free(&a);

    run_out s = run(&in, 2, 1, 0, 0); /* strict: the first bad one stops */
    CHECK(s.rc == 1 && s.s.nbad == 1 && s.res.skipped == 1);
    run_free(&s);
    prep_inputs_free(&in);
}

static void test_order_channels(void)
{
    prep_inputs in;
    make_inputs(&in, 100, 0, 0);
    uint32_t n, m;
    uint32_t *a = prep_order(&in, 1, 7, 0, &n), *b = prep_order(&in, 1, 7, 30, &m);
    CHECK(n == 100 && m == 30);
    CHECK(!memcmp(a, b, 30 * sizeof *a)); /* the limit cuts the shuffled list */
    int moved = 0, sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        moved += a[i] != i;
        sum += (int)a[i];
    }
    CHECK(moved > 50 && sum == 4950);
    uint32_t *c = prep_order(&in, 0, 7, 0, &n);
    CHECK(c[0] == 0 && c[99] == 99);
    CHECK(prep_output_channels(&in, c, n, 0) == 1); /* the array's own */
    CHECK(prep_output_channels(&in, c, n, 3) == 3);
    free(a);
    free(b);
    free(c);
    prep_inputs_free(&in);
    prep_inputs_init(&in);
    CHECK(prep_output_channels(&in, NULL, 0, 0) == 3); /* image files: RGB */
    prep_inputs_free(&in);
}

static void test_sinks(void)
{
    prep_sink t, v;
    glow_error err;
    char out[300];
    snprintf(out, sizeof out, "%s/out/", tmpdir);
    CHECK(prep_sinks_open(&t, &v, out, 1, NULL, &err) == 0);
    char want[400];
    snprintf(want, sizeof want, "%s/out/train", tmpdir);
    CHECKF(!strcmp(t.dir, want) && !strcmp(t.dest, want), "%s", t.dir);
    snprintf(want, sizeof want, "%s/out/val", tmpdir);
    CHECKF(v.dir && !strcmp(v.dir, want), "%s", v.dir ? v.dir : "(none)");
    free(t.dir);
    free(v.dir);
    CHECK(prep_sinks_open(&t, &v, out, 0, NULL, &err) == 0);
    CHECK(!strcmp(t.dir, out) && v.dir == NULL && v.f == NULL);
    free(t.dir);
    CHECK(prep_sinks_open(&t, &v, NULL, 0, NULL, &err) == 0);
    CHECK(t.f == stdout && !strcmp(t.dest, "standard output") && !v.f && !v.dir);
    snprintf(want, sizeof want, "%s/no/such/val.glow", tmpdir);
    CHECK(prep_sinks_open(&t, &v, NULL, 1, want, &err) == -1);
    CHECKF(strstr(err.msg, "cannot create") != NULL, "%s", err.msg);

    prep_inputs in;
    prep_inputs_init(&in);
    char *names[] = {"cats", "dogs"};
    in.classes = names;
    in.nclasses = 2;
    char path[300];
    snprintf(path, sizeof path, "%s/classes.tsv", tmpdir);
    CHECKF(prep_write_classes(path, &in, &err) == 0, "%s", err.msg);
    char buf[64] = {0};
    FILE *f = fopen(path, "r");
    CHECK(f && fread(buf, 1, sizeof buf - 1, f) > 0);
    if (f)
        fclose(f);
    CHECKF(!strcmp(buf, "0\tcats\n1\tdogs\n"), "'%s'", buf);
    unlink(path);
}

int main(void)
{
    glow_set_progname("test_prep_pipeline");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_prep_pipeline.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_same_bytes();
    test_bad_and_split();
    test_order_channels();
    test_sinks();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
