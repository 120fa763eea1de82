/* libFuzzer harness: the safetensors parser (data/safetensors.c), then what
 * every tool that loads a checkpoint checks (model/checkpoint.c, the one
 * validation path, and the training state of train/train_state.c), and the
 * statistics glow-ckpt --list prints. Memory is held to a 64 MiB budget. */
#include <stdint.h>
#include <string.h>

#include "base/mem_budget.h"
#include "data/safetensors.h"
#include "model/checkpoint.h"
#include "train/train_state.h"

static void count(void *ctx, const char *msg)
{
    if (strncmp(msg, "fuzz: ", 6) != 0)
        __builtin_trap(); /* every problem names the file */
    ++*(int *)ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once++)
        glow_mem_set_limit(64u << 20);
    st_file f;
    glow_error err;
    if (st_load_buffer("fuzz", data, size, &f, &err) != 0) {
        if (strncmp(err.msg, "fuzz", 4) != 0)
            __builtin_trap();
        if (glow_mem_reserved() != 0)
            __builtin_trap();
        return 0;
    }
    double acc = 0;
    for (int i = 0; i < f.n; i++) {
        st_stats s = st_tensor_stats(&f.t[i]);
        acc += s.ok ? s.mean : 0;
        if (f.t[i].nbytes)
            acc += ((const uint8_t *)f.t[i].data)[f.t[i].nbytes - 1];
    }
    glow_checkpoint ck;
    int problems = 0;
    if (glow_checkpoint_check_st(&f, &ck, count, &problems) == 0) {
        glow_train_state_check(&ck, "fuzz", count, &problems);
        glow_checkpoint_free(&ck);
    } else if (problems == 0)
        __builtin_trap(); /* a refusal says why */
    if (glow_checkpoint_inspect_st(&f, &ck, count, &problems) == 0)
        glow_checkpoint_free(&ck);
    st_free(&f);
    if (glow_mem_reserved() != 0)
        __builtin_trap();
    return acc != acc ? 0 : 0;
}
