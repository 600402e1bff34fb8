#ifndef EBFT_COPENBLAS_SHIM_H
#define EBFT_COPENBLAS_SHIM_H
// OpenBLAS: CBLAS plus openblas_set_num_threads / openblas_get_config (declared in cblas.h).
#include <cblas.h>
#endif
