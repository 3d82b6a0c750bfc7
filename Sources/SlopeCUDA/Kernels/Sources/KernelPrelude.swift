extension KernelSources {
    /// Shared prelude of every family: element types, float conversions, grid-stride loop and block reductions.
    static let prelude = #"""
    // No headers are available under NVRTC here, so the 16-bit types are plain bit containers and every
    // kernel converts to float, computes in float (or double), and converts back.
    // Each family uses only part of this prelude; silence "declared but never referenced" (177) so the
    // NVRTC log carries only real diagnostics.
    #pragma nv_diag_suppress 177
    typedef long long i64;
    struct bf16 { unsigned short bits; };
    struct f16 { unsigned short bits; };

    static __device__ __forceinline__ float to_float(float x) { return x; }
    // bfloat16 is the top half of a float32, so widening is a shift.
    static __device__ __forceinline__ float to_float(bf16 x) { return __uint_as_float(((unsigned int)x.bits) << 16); }
    static __device__ __forceinline__ float to_float(f16 x) {
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
        return f;
    }

    template <typename U> __device__ __forceinline__ U from_float(float x);
    template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
    // Round to nearest even on the 16 dropped bits; NaN stays a (quiet) NaN instead of rounding to infinity.
    template <> __device__ __forceinline__ bf16 from_float<bf16>(float x) {
        unsigned int u = __float_as_uint(x);
        bf16 r;
        if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
            r.bits = (unsigned short)(((u >> 16) & 0x8000u) | 0x7FC0u);
            return r;
        }
        u += 0x7FFFu + ((u >> 16) & 1u);
        r.bits = (unsigned short)(u >> 16);
        return r;
    }
    template <> __device__ __forceinline__ f16 from_float<f16>(float x) {
        f16 r;
        unsigned short h;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
        r.bits = h;
        return r;
    }

    // A kernel's dynamic shared memory (sized at launch; above 48 KB the launch opts in per function). The host
    // emulation in the tests defines it as a static buffer instead.
    #ifndef DYNAMIC_SHARED
    #define DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
    #endif

    // Loop over [0, n) so any 1-D grid covers the whole range.
    #define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (i64)(n); i += (i64)gridDim.x * blockDim.x)

    // Sixteen bytes of T (8 halves or 4 floats). Elementwise kernels move whole packs when every pointer is
    // 16-byte aligned (slope's tensors are: each starts an allocation), then the remaining elements one by one.
    template <typename U> struct __align__(16) Pack { U v[16 / sizeof(U)]; };
    #define PACK (16 / (int)sizeof(T))  // elements of T per pack, for kernels (T is defined after the prelude)
    static __device__ __forceinline__ bool aligned16(const void* p) { return ((unsigned long long)p & 15ull) == 0; }

    // Whether dropout keeps element i under seed, as DropoutMask decides it on the CPU: SplitMix64's finaliser of
    // seed + (i + 1)·φ, its top 24 bits at least threshold (probability · 2²⁴).
    static __device__ __forceinline__ bool dropout_keeps(i64 i, long long seed, int threshold) {
        unsigned long long z = (unsigned long long)seed + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        return (unsigned int)(z >> 40) >= (unsigned int)threshold;
    }

    // Multi-tensor kernels take up to MULTI_TENSORS tensors' addresses in their parameters (under the 4 KB limit).
    // Tensor t owns the grid's blocks from its entry's first_block on; the entry whose blocks include `block`
    // (entries in ascending first_block):
    #define MULTI_TENSORS 48
    template <typename Entry>
    __device__ __forceinline__ int entry_of_block(const Entry* entries, int count, long long block) {
        int low = 0, high = count - 1;
        while (low < high) {
            int middle = (low + high + 1) / 2;
            if (entries[middle].first_block <= block) low = middle; else high = middle - 1;
        }
        return low;
    }

    // The slot of W's compressed values that position p of cuSPARSELt's copy holds, by the packed value map:
    // per block of 2^log2_block positions a base slot, per position (or, offset_mask = 2^log2_block − 1, per
    // position of one block, when the offsets repeat) an int16 offset from it.
    static __device__ __forceinline__ long long packed_map_slot(const unsigned int* bases, const short* offsets, long long p,
                                                                int log2_block, long long offset_mask) {
        return (long long)bases[p >> log2_block] + offsets[p & offset_mask];
    }

    // The position (0..m−1 inside its group) of slot s of an N:M compressed matrix: its indices come one per
    // byte (bits = 8) or, as the GPU keeps them for m ≤ 4, four per byte (bits = 2; slot s in bits 2·(s % 4) of
    // byte s / 4).
    static __device__ __forceinline__ int slot_index(const unsigned char* indices, long long s, int bits) {
        return bits == 8 ? (int)indices[s] : (int)((indices[s >> 2] >> (2 * (s & 3))) & 3);
    }

    // out[i] = f(a[i]) for i < n, in float; out may alias a.
    template <typename E, typename F>
    static __device__ __forceinline__ void map1(const E* a, E* out, i64 n, F f) {
        constexpr int N = 16 / sizeof(E);
        i64 first = (i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (i64)gridDim.x * blockDim.x;
        i64 packs = aligned16(a) && aligned16(out) ? n / N : 0;
        for (i64 p = first; p < packs; p += stride) {
            Pack<E> x = ((const Pack<E>*)a)[p], r;
            #pragma unroll
            for (int j = 0; j < N; ++j) r.v[j] = from_float<E>(f(to_float(x.v[j])));
            ((Pack<E>*)out)[p] = r;
        }
        for (i64 i = packs * N + first; i < n; i += stride) out[i] = from_float<E>(f(to_float(a[i])));
    }

    // out[i] = f(a[i], b[i]) for i < n, in float; out may alias a or b.
    template <typename E, typename F>
    static __device__ __forceinline__ void map2(const E* a, const E* b, E* out, i64 n, F f) {
        constexpr int N = 16 / sizeof(E);
        i64 first = (i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (i64)gridDim.x * blockDim.x;
        i64 packs = aligned16(a) && aligned16(b) && aligned16(out) ? n / N : 0;
        for (i64 p = first; p < packs; p += stride) {
            Pack<E> x = ((const Pack<E>*)a)[p], y = ((const Pack<E>*)b)[p], r;
            #pragma unroll
            for (int j = 0; j < N; ++j) r.v[j] = from_float<E>(f(to_float(x.v[j]), to_float(y.v[j])));
            ((Pack<E>*)out)[p] = r;
        }
        for (i64 i = packs * N + first; i < n; i += stride) out[i] = from_float<E>(f(to_float(a[i]), to_float(b[i])));
    }

    static __device__ __forceinline__ float neg_inf() { return __uint_as_float(0xFF800000u); }
    static __device__ __forceinline__ float quiet_nan() { return __uint_as_float(0x7FC00000u); }

    // max that propagates NaN (fmaxf would drop it): a NaN in either operand wins.
    static __device__ __forceinline__ float nan_max(float a, float b) { return (a != a || a > b) ? a : b; }

    static __device__ __forceinline__ float warp_sum(float v) {
        for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
        return v;
    }
    static __device__ __forceinline__ double warp_sum_double(double v) {
        for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
        return v;
    }
    static __device__ __forceinline__ float warp_max(float v) {
        for (int offset = 16; offset > 0; offset >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, offset));
        return v;
    }

    // Block reductions for blockDim.x a multiple of 32 (kernels use 256); every thread gets the result,
    // and every warp reduces the same partials in the same order, so all threads see identical bits.
    // The leading __syncthreads keeps a second call from overwriting partials a slower warp still reads.
    static __device__ __forceinline__ float block_sum(float v) {
        __shared__ float partial[32];
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        v = warp_sum(v);
        __syncthreads();
        if (lane == 0) partial[warp] = v;
        __syncthreads();
        return warp_sum(lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.0f);
    }
    static __device__ __forceinline__ double block_sum_double(double v) {
        __shared__ double partial_d[32];
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        v = warp_sum_double(v);
        __syncthreads();
        if (lane == 0) partial_d[warp] = v;
        __syncthreads();
        return warp_sum_double(lane < (int)(blockDim.x >> 5) ? partial_d[lane] : 0.0);
    }
    // NaN-propagating block maximum.
    static __device__ __forceinline__ float block_max(float v) {
        __shared__ float partial_m[32];
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        v = warp_max(v);
        __syncthreads();
        if (lane == 0) partial_m[warp] = v;
        __syncthreads();
        return warp_max(lane < (int)(blockDim.x >> 5) ? partial_m[lane] : neg_inf());
    }
    """#
}
