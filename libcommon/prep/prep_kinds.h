/* The input kinds of glow-prep, each reading one kind of input into the items
 * (prep_items.h); prep_inputs_add picks the kind. */
#ifndef GLOW_PREP_KINDS_H
#define GLOW_PREP_KINDS_H

#include <stdio.h>

#include "prep_items.h"

int prep_add_text(prep_inputs *in, const char *path, prep_format f, const prep_options *opt,
                  glow_error *err);
int prep_add_dir(prep_inputs *in, const char *path, const prep_options *opt, glow_error *err);
int prep_add_idx(prep_inputs *in, const char *path, const prep_options *opt, glow_error *err);
int prep_add_cifar(prep_inputs *in, const char *path, int hundred, glow_error *err);
/* A shard file, a folder of them (recursively) or "-"; prep_shard.c. */
int prep_add_shard(prep_inputs *in, const char *path, glow_error *err);
/* Standard input with its first bytes peeked at: the stream every reader of "-"
 * uses, and whether it starts with a shard record. */
FILE *prep_stdin(prep_inputs *in);
int prep_stdin_is_shard(prep_inputs *in);

#endif
