/* A shared object with a probeable function, to test symbol lookup and probes
 * outside the main executable. */
#include "libpatch/patchable.h"

LP_PATCHABLE int lpt_dso_square(int x) { return x * x; }
