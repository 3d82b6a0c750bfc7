#define _GNU_SOURCE
#include "CCUDA.h"
#include <dlfcn.h>
#include <link.h>
#include <stdalign.h>

size_t slope_ccuda_sparse_object_bytes(void) { return sizeof(slope_cusparseLtMatmulPlan); }
size_t slope_ccuda_sparse_object_alignment(void) { return alignof(slope_cusparseLtMatmulPlan); }

const char *slope_dl_path(void *handle) {
    struct link_map *map = NULL;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == NULL) return NULL;
    return map->l_name;
}
