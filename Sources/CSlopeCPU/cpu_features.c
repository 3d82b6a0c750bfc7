// Run-time choice of the SIMD level: the best the processor supports, capped by slope_cpu_force_isa.
#include "CSlopeCPU.h"

static int forced_level = -1;

static int supported_level(void) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

int slope_cpu_isa(void) {
    static int best = -1;  // the processor does not change: detect once (a benign race writes the same value)
    if (best < 0) best = supported_level();
    return forced_level >= 0 && forced_level < best ? forced_level : best;
}

void slope_cpu_force_isa(int level) { forced_level = level; }
