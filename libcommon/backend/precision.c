#include "precision.h"

const char *glow_precision_name(glow_precision p)
{
    switch (p) {
    case PRECISION_TF32: return "tf32";
    case PRECISION_BF16: return "bf16";
    default: return "fp32";
    }
}
