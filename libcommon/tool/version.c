/* The version string, from the header make writes at build time
 * ($(BUILD)/gen/glow_version.h, from scripts/version.sh). */
#include "tool.h"

#include "glow_version.h"

const char *glow_version(void) { return GLOW_VERSION; }
