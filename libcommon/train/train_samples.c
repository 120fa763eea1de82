#include "train_samples.h"

#include <stdlib.h>
#include <string.h>

#include "base/atomic_file.h"
#include "base/mem_budget.h"
#include "base/path.h"
#include "data/png_write.h"

enum { COLS = 8, MAX_SHOWN = 32, MAX_RECON = 8, PAD = 2, BLOCK_GAP = 8, BG = 255 };

int glow_sampler_drawable(const glow_config *mc) { return mc->channels == 1 || mc->channels == 3; }

int glow_sampler_init(glow_sampler *s, const glow_config *mc, int batch,
                      const glow_number_list *temps, uint64_t seed, dataset *val, glow_error *err)
{
    memset(s, 0, sizeof *s);
    s->mc = *mc;
    s->batch = batch;
    s->shown = batch < MAX_SHOWN ? batch : MAX_SHOWN;
    s->temps = *temps;
    s->seed = seed;
    const size_t D = (size_t)glow_config_dims(mc);
    /* a batch of images and labels; with reconstructions another, the bin centres,
     * the decoded images and the latents (floats, as many as the images' values) */
    uint64_t img = glow_mem_mul((uint64_t)batch, D + sizeof(int32_t));
    uint64_t need = val ? glow_mem_add(2 * img, glow_mem_mul(3 * sizeof(float), (uint64_t)batch * D))
                        : img;
    if (glow_mem_reserve(need, "the buffers of the sample grids", err) != 0)
        return -1;
    s->mem = need;
    s->px = xmalloc((size_t)batch * D);
    s->labels = xcalloc((size_t)batch, sizeof *s->labels);
    for (int i = 0; i < batch; i++) /* glow-sample's classes: a function of i alone */
        s->labels[i] = mc->y_condition && mc->n_classes > 0 ? i % mc->n_classes : 0;
    if (!val)
        return 0;
    uint64_t nval = dataset_get_info(val)->n_images;
    int n = batch < MAX_RECON ? batch : MAX_RECON;
    if ((uint64_t)n > nval)
        n = (int)nval;
    if (n <= 0)
        return 0;
    s->recon_px = xmalloc((size_t)batch * D);
    s->recon_labels = xcalloc((size_t)batch, sizeof *s->recon_labels);
    dataset_rewind(val);
    int got = dataset_read_seq(val, (uint32_t)n, s->recon_px, s->recon_labels, err);
    dataset_rewind(val);
    if (got < 0)
        return -1;
    s->n_recon = got;
    for (int i = got; i < batch && got > 0; i++) {
        memcpy(s->recon_px + (size_t)i * D, s->recon_px + (size_t)(got - 1) * D, D);
        s->recon_labels[i] = s->recon_labels[got - 1];
    }
    s->noise = xmalloc((size_t)batch * D * sizeof *s->noise);
    const float centre = 0.5f / (float)(1 << mc->n_bits);
    for (size_t i = 0; i < (size_t)batch * D; i++)
        s->noise[i] = centre;
    s->x = xmalloc((size_t)batch * D * sizeof *s->x);
    return 0;
}

/* A canvas of w x h pixels, HWC, filled with the background. */
typedef struct {
    uint32_t w, h;
    int c;
    uint8_t *pix;
} canvas;

static void canvas_new(canvas *cv, uint32_t w, uint32_t h, int c)
{
    cv->w = w;
    cv->h = h;
    cv->c = c;
    cv->pix = xmalloc((size_t)w * h * (size_t)c);
    memset(cv->pix, BG, (size_t)w * h * (size_t)c);
}

/* The CHW image img at (x0, y0). */
static void place(canvas *cv, const glow_config *mc, const uint8_t *img, uint32_t x0, uint32_t y0)
{
    const int C = mc->channels, H = mc->image_h, W = mc->image_w;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++)
                cv->pix[((size_t)(y0 + (uint32_t)y) * cv->w + x0 + (uint32_t)x) * (size_t)C +
                        (size_t)c] = img[((size_t)c * H + (size_t)y) * W + (size_t)x];
}

static int write_png(const canvas *cv, const char *path, glow_error *err)
{
    atomic_file af;
    if (atomic_open(&af, path, err) != 0)
        return -1;
    if (glow_png_write_u8(af.f, cv->pix, cv->w, cv->h, cv->c, err) != 0) {
        atomic_abort(&af);
        glow_error_prefix(err, "%s", path);
        return -1;
    }
    return atomic_commit(&af, err);
}

static int write_samples(glow_sampler *s, glow_model *m, const char *path, glow_error *err)
{
    const glow_config *mc = &s->mc;
    const size_t D = (size_t)glow_config_dims(mc);
    const uint32_t H = (uint32_t)mc->image_h, W = (uint32_t)mc->image_w;
    const int cols = s->shown < COLS ? s->shown : COLS;
    const int rows = (s->shown + cols - 1) / cols;
    const uint32_t block_h = (uint32_t)rows * (H + PAD) - PAD;
    canvas cv;
    canvas_new(&cv, (uint32_t)cols * (W + PAD) - PAD + 2 * PAD,
               (uint32_t)s->temps.n * (block_h + BLOCK_GAP) - BLOCK_GAP + 2 * PAD, mc->channels);
    for (int t = 0; t < s->temps.n; t++) {
        glow_model_sample(m, s->batch, (float)s->temps.v[t], s->seed, 0,
                          mc->y_condition ? s->labels : NULL, s->px, NULL);
        const uint32_t top = PAD + (uint32_t)t * (block_h + BLOCK_GAP);
        for (int i = 0; i < s->shown; i++)
            place(&cv, mc, s->px + (size_t)i * D, PAD + (uint32_t)(i % cols) * (W + PAD),
                  top + (uint32_t)(i / cols) * (H + PAD));
    }
    int rc = write_png(&cv, path, err);
    free(cv.pix);
    return rc;
}

static int write_recon(glow_sampler *s, glow_model *m, const char *path, glow_error *err)
{
    const glow_config *mc = &s->mc;
    const size_t D = (size_t)glow_config_dims(mc);
    glow_batch bt = {s->batch, s->recon_px, s->noise, 0, 0, mc->y_condition ? s->recon_labels : NULL};
    glow_result r;
    if (glow_model_eval(m, &bt, &r, err) != 0) {
        glow_error_prefix(err, "reconstructions");
        return -1;
    }
    if (!s->z) {
        s->L = glow_model_n_latents(m);
        s->z = xcalloc((size_t)s->L, sizeof *s->z);
        for (int l = 0; l < s->L; l++) {
            int sh[4];
            glow_model_latent_shape(m, l, s->batch, sh);
            s->z[l] = xmalloc((size_t)sh[0] * sh[1] * sh[2] * sh[3] * sizeof(float));
        }
    }
    for (int l = 0; l < s->L; l++)
        glow_model_get_latent(m, l, s->z[l]);
    glow_model_inverse(m, s->batch, (const float *const *)s->z, s->x);
    glow_model_quantize(m, (size_t)s->batch * D, s->x, s->px);
    const uint32_t H = (uint32_t)mc->image_h, W = (uint32_t)mc->image_w;
    canvas cv;
    canvas_new(&cv, (uint32_t)s->n_recon * (W + PAD) + PAD, 2 * (H + PAD) + PAD, mc->channels);
    for (int i = 0; i < s->n_recon; i++) {
        place(&cv, mc, s->recon_px + (size_t)i * D, PAD + (uint32_t)i * (W + PAD), PAD);
        place(&cv, mc, s->px + (size_t)i * D, PAD + (uint32_t)i * (W + PAD), 2 * PAD + H);
    }
    int rc = write_png(&cv, path, err);
    free(cv.pix);
    return rc;
}

int glow_sampler_write(glow_sampler *s, glow_model *m, const char *run_dir, int64_t step,
                       char *names, size_t names_len, glow_error *err)
{
    names[0] = '\0';
    if (!glow_sampler_drawable(&s->mc))
        return 0;
    char *dir = glow_path_join(run_dir, "samples");
    int rc = glow_mkdir_p(dir, err);
    char name[2][64];
    snprintf(name[0], sizeof name[0], "samples/step-%07lld.png", (long long)step);
    snprintf(name[1], sizeof name[1], "samples/recon-%07lld.png", (long long)step);
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (k == 1 && s->n_recon == 0)
            break;
        char *path = glow_path_join(run_dir, name[k]);
        rc = k == 0 ? write_samples(s, m, path, err) : write_recon(s, m, path, err);
        free(path);
        if (rc == 0)
            snprintf(names + strlen(names), names_len - strlen(names), "%s%s", k ? " " : "",
                     name[k]);
    }
    free(dir);
    return rc;
}

void glow_sampler_free(glow_sampler *s)
{
    for (int l = 0; s->z && l < s->L; l++)
        free(s->z[l]);
    free(s->z);
    free(s->px);
    free(s->labels);
    free(s->recon_px);
    free(s->recon_labels);
    free(s->noise);
    free(s->x);
    glow_mem_release(s->mem);
    memset(s, 0, sizeof *s);
}
