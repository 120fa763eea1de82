/* libFuzzer harness of the PyTorch reader (make fuzz-torch-pickle): an input that
 * starts with "PK" is a whole torch.save file (data/torch_zip.h, the pickle, the
 * state dict of data/torch_state.h) and, when it reads, is imported as a Glow
 * (model/import_torch.h); any other input is a bare pickle for
 * data/torch_pickle.h. Nothing may crash, leak, read out of bounds or hit
 * undefined behaviour, whatever the bytes; errors are the expected outcome.
 * Seeds: test/fuzz/corpus/torch_pickle/ (the ports' fixtures and their pickles). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "data/torch_pickle.h"
#include "data/torch_state.h"
#include "model/import_torch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    glow_error err = {{0}};
    if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
        torch_state sd;
        if (torch_state_load_buffer("fuzz.pt", data, size, &sd, &err) != 0)
            return 0;
        for (int reverse = 0; reverse < 2; reverse++) {
            glow_import_opts o;
            glow_import_opts_default(&o);
            o.reverse = reverse;
            glow_checkpoint ck;
            if (glow_import_torch(&sd, &o, &ck, &err) == 0)
                glow_checkpoint_free(&ck);
        }
        torch_state_free(&sd);
        return 0;
    }
    tp_doc doc;
    if (tp_parse("fuzz.pkl", data, size, &doc, &err) == 0) {
        /* walk the root the way the state-dict finder does */
        if (doc.root->kind == TPV_DICT)
            (void)tp_dict_get(doc.root, "state_dict");
        tp_free(&doc);
    }
    return 0;
}
