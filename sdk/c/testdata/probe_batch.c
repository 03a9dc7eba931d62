/* probe.c built with the per-batch entry point (SLUICE_TRANSFORM_BATCH). */
#define PROBE_BATCH 1
#include "probe.c"
