/* The model config (defaults, JSON round trip, every validation error) and the
 * parameter layout it implies (names, shapes, trained flags), checked against the
 * reference checkpoints. */
#include <stdlib.h>

#include "check.h"
#include "config/glow_config.h"
#include "data/safetensors.h"
#include "model/params.h"

static const char *ref_dir(void)
{
    const char *r = getenv("GLOW_REF");
    return r && *r ? r : "../shared/reference";
}

/* from_json must fail with a message that mentions `needle`. */
static void expect_json_error(const char *json, const char *needle)
{
    glow_config c;
    glow_error err = {{0}};
    int rc = glow_config_from_json(json, &c, &err);
    CHECKF(rc == -1, "accepted: %s", json);
    CHECKF(strstr(err.msg, needle) != NULL, "%s -> '%s' lacks '%s'", json, err.msg, needle);
}

static void expect_invalid(const glow_config *c, const char *needle)
{
    glow_error err = {{0}};
    int rc = glow_config_validate(c, &err);
    CHECKF(rc == -1, "accepted config expected to fail on %s", needle);
    CHECKF(strstr(err.msg, needle) != NULL, "'%s' lacks '%s'", err.msg, needle);
}

static void test_defaults(void)
{
    glow_config c;
    glow_config_default(&c);
    CHECK(c.channels == 3 && c.levels == 3 && c.steps == 32 && c.width == 512);
    CHECK(c.coupling == COUPLING_AFFINE && c.permutation == PERM_INVCONV);
    CHECK(!c.lu && c.edge_bias && c.learn_top && !c.y_condition && c.n_classes == 0);
    CHECK(c.weight_y == 0.01 && c.n_bits == 8);
    CHECK(c.image_h == 0 && c.image_w == 0);
    expect_invalid(&c, "image_size");

    glow_error err = {{0}};
    CHECK(glow_config_from_json("{\"image_size\": 32}", &c, &err) == 0);
    CHECK(c.image_h == 32 && c.image_w == 32 && c.steps == 32 && c.edge_bias == 1);
    CHECK(glow_config_from_json("{\"image_size\": [16, 32], \"levels\": 4}", &c, &err) == 0);
    CHECK(c.image_h == 16 && c.image_w == 32 && c.levels == 4);
    CHECK(glow_config_dims(&c) == 3 * 16 * 32);
    CHECK(glow_level_channels(&c, 0) == 12 && glow_level_channels(&c, 3) == 96);
    CHECK(glow_level_h(&c, 1) == 4 && glow_level_w(&c, 1) == 8);
    CHECK(strcmp(glow_coupling_name(COUPLING_ADDITIVE), "additive") == 0);
    CHECK(strcmp(glow_permutation_name(PERM_SHUFFLE), "shuffle") == 0);
    CHECK(strcmp(glow_permutation_name(PERM_REVERSE), "reverse") == 0);
}

static void test_round_trip(void)
{
    glow_config a, b;
    glow_config_default(&a);
    a.image_h = 24;
    a.image_w = 40;
    a.channels = 1;
    a.levels = 3;
    a.steps = 5;
    a.width = 7;
    a.coupling = COUPLING_ADDITIVE;
    a.permutation = PERM_SHUFFLE;
    a.edge_bias = 0;
    a.learn_top = 0;
    a.y_condition = 1;
    a.n_classes = 10;
    a.weight_y = 0.125;
    a.n_bits = 5;
    char *js = glow_config_to_json(&a);
    glow_error err = {{0}};
    CHECKF(glow_config_from_json(js, &b, &err) == 0, "%s", err.msg);
    CHECK(glow_config_equal(&a, &b));
    /* Every key is written out. */
    const char *keys[] = {"image_size", "channels", "levels", "steps", "width",
                          "coupling", "permutation", "lu", "edge_bias", "learn_top",
                          "y_condition", "n_classes", "weight_y", "n_bits"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char q[64];
        snprintf(q, sizeof q, "\"%s\":", keys[i]);
        CHECKF(strstr(js, q) != NULL, "%s missing in %s", keys[i], js);
    }
    CHECK(strstr(js, "\"image_size\":[24,40]") != NULL);
    CHECK(strstr(js, "\"lu\":false") != NULL);
    free(js);

    b.weight_y = 0.5;
    CHECK(!glow_config_equal(&a, &b));
    b = a;
    b.lu = 1;
    CHECK(!glow_config_equal(&a, &b));

    a.permutation = PERM_INVCONV;
    a.lu = 1;
    a.weight_y = 0.01;
    js = glow_config_to_json(&a);
    CHECK(glow_config_from_json(js, &b, &err) == 0 && glow_config_equal(&a, &b));
    free(js);
}

static void test_errors(void)
{
    expect_json_error("not json", "JSON");
    expect_json_error("[1, 2]", "object");
    expect_json_error("{\"image_size\": 32, \"depth\": 3}", "depth");
    expect_json_error("{\"image_size\": 32, \"levels\": 2, \"levels\": 2}", "levels");
    expect_json_error("{}", "image_size");
    expect_json_error("{\"image_size\": [32]}", "image_size");
    expect_json_error("{\"image_size\": [32, 32, 3]}", "image_size");
    expect_json_error("{\"image_size\": \"32\"}", "image_size");
    expect_json_error("{\"image_size\": [32, 31.5]}", "image_size");
    expect_json_error("{\"image_size\": [30, 32]}", "image_size");
    expect_json_error("{\"image_size\": 0}", "image_size");
    expect_json_error("{\"image_size\": 32, \"channels\": \"3\"}", "channels");
    expect_json_error("{\"image_size\": 32, \"channels\": 0}", "channels");
    expect_json_error("{\"image_size\": 32, \"levels\": 0}", "levels");
    expect_json_error("{\"image_size\": 32, \"levels\": 2.5}", "levels");
    expect_json_error("{\"image_size\": 32, \"steps\": -1}", "steps");
    expect_json_error("{\"image_size\": 32, \"width\": 0}", "width");
    expect_json_error("{\"image_size\": 32, \"coupling\": \"affin\"}", "coupling");
    expect_json_error("{\"image_size\": 32, \"coupling\": 1}", "coupling");
    expect_json_error("{\"image_size\": 32, \"permutation\": \"random\"}", "permutation");
    expect_json_error("{\"image_size\": 32, \"lu\": 1}", "lu");
    expect_json_error("{\"image_size\": 32, \"lu\": \"true\"}", "lu");
    expect_json_error("{\"image_size\": 32, \"edge_bias\": null}", "edge_bias");
    expect_json_error("{\"image_size\": 32, \"learn_top\": 0}", "learn_top");
    expect_json_error("{\"image_size\": 32, \"y_condition\": \"yes\"}", "y_condition");
    expect_json_error("{\"image_size\": 32, \"n_classes\": -2}", "n_classes");
    expect_json_error("{\"image_size\": 32, \"y_condition\": true}", "n_classes");
    expect_json_error("{\"image_size\": 32, \"weight_y\": \"0.1\"}", "weight_y");
    expect_json_error("{\"image_size\": 32, \"weight_y\": -0.1}", "weight_y");
    expect_json_error("{\"image_size\": 32, \"n_bits\": 9}", "n_bits");
    expect_json_error("{\"image_size\": 32, \"n_bits\": 0}", "n_bits");
    expect_json_error("{\"image_size\": 32, \"lu\": true, \"permutation\": \"shuffle\"}", "lu");

    glow_config c;
    glow_config_default(&c);
    c.image_h = c.image_w = 32;
    glow_error err = {{0}};
    CHECK(glow_config_validate(&c, &err) == 0);
    glow_config d = c;
    d.coupling = (glow_coupling)7;
    expect_invalid(&d, "coupling");
    d = c;
    d.permutation = (glow_permutation)9;
    expect_invalid(&d, "permutation");
    d = c;
    d.weight_y = NAN;
    expect_invalid(&d, "weight_y");
    d = c;
    d.levels = 11;
    expect_invalid(&d, "levels");
    d = c;
    d.image_w = 48;
    d.levels = 5;
    expect_invalid(&d, "image_size");
    d = c;
    d.channels = 64;
    d.image_h = d.image_w = 8192;
    expect_invalid(&d, "image_size");
}

/* The layout of a config equals the tensors of the reference model exactly. */
static void test_layout_matches(const char *case_name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/model.safetensors", ref_dir(), case_name);
    st_file f;
    glow_error err = {{0}};
    if (st_load(path, &f, &err) != 0) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    glow_config c;
    const char *model = st_meta(&f, "model");
    CHECK(model != NULL);
    CHECKF(model && glow_config_from_json(model, &c, &err) == 0, "%s", err.msg);
    glow_paramset ps;
    CHECKF(glow_paramset_layout(&c, &ps, &err) == 0, "%s", err.msg);
    CHECKF(ps.n == f.n, "%s: layout has %d tensors, file %d", case_name, ps.n, f.n);
    int all_match = 1;
    for (int i = 0; i < ps.n; i++) {
        const glow_param *p = &ps.v[i];
        const st_tensor *t = st_find(&f, p->name);
        int ok = t && t->ndim == p->ndim && t->count == p->count &&
                 t->dtype == (p->dtype == PARAM_F32 ? ST_F32 : ST_I32);
        for (int d = 0; ok && d < p->ndim; d++)
            ok = t->shape[d] == p->shape[d];
        if (!ok) {
            fprintf(stderr, "%s: %s does not match the file\n", case_name, p->name);
            all_match = 0;
        }
        int fixed = strstr(p->name, "invconv.p") || strstr(p->name, "sign_s") ||
                    strstr(p->name, "shuffle.perm");
        all_match &= p->trained == !fixed;
        all_match &= glow_paramset_find(&ps, p->name) == p;
    }
    CHECKF(all_match, "%s", case_name);
    glow_paramset_free(&ps);
    st_free(&f);
}

static void test_layout_variants(void)
{
    glow_config c;
    glow_config_default(&c);
    c.image_h = c.image_w = 8;
    c.channels = 1;
    c.levels = 2;
    c.steps = 2;
    c.width = 4;
    c.permutation = PERM_SHUFFLE;
    c.learn_top = 0;
    glow_paramset ps;
    glow_error err = {{0}};
    CHECK(glow_paramset_layout(&c, &ps, &err) == 0);
    glow_param *perm = glow_paramset_find(&ps, "flow.1.1.shuffle.perm");
    CHECK(perm && perm->dtype == PARAM_I32 && perm->count == 8 && !perm->trained);
    CHECK(glow_paramset_find(&ps, "prior.conv.weight") == NULL);
    CHECK(glow_paramset_find(&ps, "flow.0.0.invconv.weight") == NULL);
    CHECK(glow_paramset_find(&ps, "split.0.conv.weight") != NULL);
    CHECK(glow_paramset_find(&ps, "split.1.conv.weight") == NULL);
    glow_param *w1 = glow_paramset_find(&ps, "flow.0.1.coupling.conv1.weight");
    CHECK(w1 && w1->shape[0] == 4 && w1->shape[1] == 3 && w1->shape[2] == 3);
    glow_param *w3 = glow_paramset_find(&ps, "flow.1.0.coupling.conv3.weight");
    CHECK(w3 && w3->shape[0] == 8 && w3->shape[1] == 5);
    /* shuffle perms are not trained: 2 levels x 2 steps x C entries fewer. */
    size_t total = 0;
    for (int i = 0; i < ps.n; i++)
        total += ps.v[i].count;
    CHECK(glow_paramset_trained_count(&ps) == total - 2 * 4 - 2 * 8);
    /* Layout order: flow by level and step first. */
    CHECK(strcmp(ps.v[0].name, "flow.0.0.actnorm.bias") == 0);
    CHECK(strcmp(ps.v[ps.n - 1].name, "split.0.conv.logs") == 0);

    glow_paramset cl;
    ((float *)w1->data)[3] = 2.5f;
    glow_paramset_clone(&ps, &cl, 0);
    glow_param *cw = glow_paramset_find(&cl, "flow.0.1.coupling.conv1.weight");
    CHECK(cl.n == ps.n && cw && cw->data != w1->data && ((float *)cw->data)[3] == 2.5f);
    glow_paramset_free(&cl);
    glow_paramset_clone(&ps, &cl, 1);
    cw = glow_paramset_find(&cl, "flow.0.1.coupling.conv1.weight");
    CHECK(cw && ((float *)cw->data)[3] == 0.0f);
    glow_paramset_free(&cl);
    glow_paramset_free(&ps);
    CHECK(ps.n == 0 && ps.v == NULL);

    /* reverse: no permutation tensors at all; y_condition without head. */
    c.permutation = PERM_REVERSE;
    c.y_condition = 1;
    c.n_classes = 4;
    c.weight_y = 0;
    CHECK(glow_paramset_layout(&c, &ps, &err) == 0);
    int any_perm = 0;
    for (int i = 0; i < ps.n; i++)
        any_perm |= strstr(ps.v[i].name, "shuffle") || strstr(ps.v[i].name, "invconv");
    CHECK(!any_perm);
    glow_param *ye = glow_paramset_find(&ps, "prior.y_emb.weight");
    CHECK(ye && ye->shape[0] == 16 && ye->shape[1] == 4);
    CHECK(glow_paramset_find(&ps, "classifier.weight") == NULL);
    glow_paramset_free(&ps);

    c.image_h = 10;
    CHECK(glow_paramset_layout(&c, &ps, &err) == -1 && strstr(err.msg, "image_size"));
}

int main(void)
{
    test_defaults();
    test_round_trip();
    test_errors();
    test_layout_matches("affine-invconv");
    test_layout_matches("additive-lu-ycond");
    test_layout_variants();
    return check_summary();
}
