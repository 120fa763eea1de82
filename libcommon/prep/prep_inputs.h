/* The inputs of glow-prep: what images there are, in which order, with which
 * labels, before anything is decoded.
 *
 * Image files (from a CSV, a list, a directory or named directly) become items
 * with a path; images inside data files (IDX, CIFAR) are loaded whole into
 * arrays and become items that point into them. */
#ifndef GLOW_PREP_INPUTS_H
#define GLOW_PREP_INPUTS_H

#include "base/util.h"

#include "prep_items.h"

/* Add one input (path "-": a CSV or list on standard input). Bad entries of a
 * list are reported on stderr as "FILE: line N: reason", counted in bad_lines and
 * skipped; with opt->strict the first one is returned as the error instead.
 * Returns 0, or -1 with err set to "FILE: reason". */
int prep_inputs_add(prep_inputs *in, const char *path, const prep_options *opt, glow_error *err);

/* --format value -> format; -1 for an unknown name. "cifar" means CIFAR-10. */
int prep_parse_format(const char *s, prep_format *f);
const char *prep_format_name(prep_format f);
/* What an input is, by name and content (for PREP_AUTO); "-" is peeked at
 * through in (prep_stdin). */
int prep_detect(prep_inputs *in, const char *path, prep_format *f, glow_error *err);


#endif
