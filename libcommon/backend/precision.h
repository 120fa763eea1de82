/* --precision fp32|tf32|bf16 (train.precision): the arithmetic of convolutions and
 * matrix products. Priors, log-determinants and the loss are fp32 whatever the
 * choice. Here rather than in train_config.h so that backend.h can name it.
 *
 * The rule of each, the same for 1x1 (matrix product) and 3x3 convolutions, and
 * for the forward, data-gradient and filter-gradient operations:
 *   fp32  operands, products and sums in IEEE fp32 (no tensor-core shortcuts);
 *   tf32  operands rounded to tf32 (fp32's 8-bit exponent, 10 mantissa bits: fp32's
 *         range, never fp16's), products summed in fp32, fp32 results;
 *   bf16  operands (input, weights, output gradient; the edge channel's weights
 *         too) rounded to bf16, round to nearest even; products summed in fp32;
 *         outputs and weight gradients fp32, not rounded to bf16. A bf16 result
 *         is therefore the fp32 convolution of the bf16-rounded operands, up to
 *         the order of the fp32 sums.
 * The bias, scale and ReLU that a backend applies with a convolution
 * (conv_fwd_affine), and accumulation into an existing output, are fp32. */
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
