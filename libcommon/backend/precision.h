/* --precision fp32|tf32|bf16 (train.precision): the arithmetic of convolutions and
 * matrix products. Priors, log-determinants and the loss are fp32 whatever the
 * choice. Here rather than in train_config.h so that backend.h can name it. */
#ifndef GLOW_PRECISION_H
#define GLOW_PRECISION_H

typedef enum {
    PRECISION_FP32 = 0, /* IEEE fp32 throughout (the default) */
    PRECISION_TF32 = 1, /* fp32 data, tensor-core products with 10-bit mantissas */
    PRECISION_BF16 = 2  /* bf16 conv operands, fp32 accumulation and outputs */
} glow_precision;

/* "fp32", "tf32" or "bf16" */
#ifdef __cplusplus
extern "C"
#endif
const char *glow_precision_name(glow_precision p);

#endif
