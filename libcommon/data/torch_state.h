/* The state dict inside a torch.save file (data/torch_zip.h for the container,
 * data/torch_pickle.h for the pickle): a name -> tensor map, read without running
 * any of the file's code.
 *
 * The pickle (<archive>/data.pkl) must hold either a state dict (a dict of str
 * keys and tensor values) or a dict around one, found under "state_dict",
 * "model", "model_state_dict", "graph" or "net" (in that order), or else as the
 * only value of the dict that is a state dict. A "module." prefix on every name
 * (torch.nn.DataParallel) is removed. Each tensor is copied out of its storage
 * (<archive>/data/<key>, whose size must match the storage's) into a contiguous
 * row-major block, whatever its strides and offset. */
#ifndef GLOW_TORCH_STATE_H
#define GLOW_TORCH_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "torch_pickle.h"

typedef struct {
    char *name;
    tp_dtype dtype;
    int ndim;
    int64_t shape[8];
    size_t count;
    void *data;      /* count elements of dtype, contiguous, little-endian */
} torch_tensor;

typedef struct {
    char *path;
    char *wrapper;   /* the key the state dict was under, NULL for a bare one */
    int stripped;    /* "module." prefixes removed */
    torch_tensor *t; /* in the file's order */
    int n;
} torch_state;

/* Read the state dict of a torch.save file (path "-": standard input). Errors
 * name the file and the archive entry, pickle offset or tensor. */
int torch_state_load(const char *path, torch_state *sd, glow_error *err);
/* The same on bytes in memory (path only names them in messages). */
int torch_state_load_buffer(const char *path, const unsigned char *buf, size_t size,
                            torch_state *sd, glow_error *err);
void torch_state_free(torch_state *sd);

const torch_tensor *torch_state_find(const torch_state *sd, const char *name);
/* Element i (row-major) as a double: floats widened, integers and bools converted. */
double torch_tensor_at(const torch_tensor *t, size_t i);
int torch_tensor_is_float(const torch_tensor *t);

#endif
