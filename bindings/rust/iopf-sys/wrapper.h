/* What bindgen reads: the installed public header, found through the
 * include paths pkg-config gives (or the compiler's default ones). */
#include <iopf/iopf.h>
