/* analysis: see analysis.h. */
#include "analysis.h"

#include <stdlib.h>
#include <string.h>

void drive2_analysis_clear(drive2_analysis_t *a) {
    free(a->filename);
    free(a->summary);
    for (size_t i = 0; i < a->tag_count; i++)
        free(a->tags[i]);
    free(a->tags);
    free(a->embedding);
    memset(a, 0, sizeof *a);
}
