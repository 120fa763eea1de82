/* glow-train's data: does a data set fit the model (shape, labels), and what to
 * tell glow-prep when it does not. */
#ifndef GLOW_TRAIN_DATA_H
#define GLOW_TRAIN_DATA_H

#include <stddef.h>

#include "config/glow_config.h"
#include "data/dataset.h"

/* Are these inputs standard input (none, or the one name "-")? */
int glow_train_data_is_stream(int n, char *const *inputs);

/* The glow-prep option that makes images of this shape fit the model:
 * "glow-prep --channels C", "--pad P" (an even square margin) or "--size HxW". */
void glow_train_shape_hint(const dataset_info *in, const glow_config *m, char *buf, size_t n);

/* Does d fit model m: its images of the model's shape and, for a
 * class-conditional model, labelled with every label in 0..n_classes-1 (one pass
 * over the data from its first image up front, then rewound, rather than failing whenever a bad one
 * is drawn, perhaps hours in). what names the set in messages ("training").
 * Returns 0, or -1 with err set. */
int glow_train_data_check(dataset *d, const char *what, const glow_config *m, glow_error *err);
/* The same with the labels of one part of parts only (images
 * n*part/parts..n*(part+1)/parts-1 in stored order): each process of a run on
 * several checks its share, so none reads the whole data set. */
int glow_train_data_check_part(dataset *d, const char *what, const glow_config *m, int part,
                               int parts, glow_error *err);

/* The model's shape asked of every record of a stream before it is decompressed
 * (a shard_expect_fn: ctx is the glow_config), with glow_train_data_check's
 * message. */
int glow_train_data_expect(void *ctx, const shard_record *hdr, int has_labels, glow_error *err);

#endif
