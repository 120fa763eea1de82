/* Configs by name: `glow-train -c cifar10` finds the shipped configs/cifar10.yml.
 *
 * A name that is an existing file, or that contains a '/', is a path and is taken
 * as it is. Otherwise NAME and NAME.yml are looked for, in order, in
 *   1. each folder of $GLOW_CONFIG_PATH (':'-separated),
 *   2. BINDIR/../share/glow/configs, BINDIR being the folder of the running
 *      program (/proc/self/exe, links resolved): the installed configs
 *      (PREFIX/share/glow/configs, make install), and in a checkout
 *      build/share/glow/configs, a link to configs/ that make creates.
 * The installed tree is found from the program, so a package or a staged
 * install (DESTDIR) finds its own configs wherever it lies. */
#ifndef GLOW_CONFIG_FIND_H
#define GLOW_CONFIG_FIND_H

#include "base/util.h"

/* The path of config `name` (caller frees), or NULL with err set: the message
 * names the folders searched. */
char *glow_config_find(const char *name, glow_error *err);

/* The folders searched for names, in order, ':'-separated (caller frees). */
char *glow_config_search_path(void);

#endif
