/* libFuzzer harness: the JPEG decoder as glow-prep uses it (fuzz_image.h). */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return decode_like_prep(data, size, 1);
}
