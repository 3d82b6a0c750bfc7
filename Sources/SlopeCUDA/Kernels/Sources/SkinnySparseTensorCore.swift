extension KernelSources {
    /// Decoding's skinny 2:4 GEMM on sparse tensor cores (`mma.sp`, sm_80+): the same product and arguments as
    /// `skinny_24_matmul` (KernelSources.skinnySparse), but the kept values and their 2-bit indices go straight from
    /// memory into `mma.sp.m16n8k32` operands, so the CUDA cores do no per-value selection (what held the CUDA-core
    /// kernels to ~1.4 TB/s at one token and made them compute-bound from four). Up to 32 tokens in one launch
    /// (four n-tiles of 8 sharing each loaded weight fragment).
    ///
    /// Layout. A block owns 16 output rows and splits their k among its warps; a warp takes super-tiles of 128
    /// columns (64 kept values, 128 bytes a row) in turn. Lane (g = lane / 4, t = lane % 4) loads, for rows g and
    /// g + 8, the 16 bytes of kept values at words 4t … 4t + 3 and 16 + 4t … 16 + 4t + 3 of the super-tile (each
    /// 32-bit word: the two kept values of one group of 4 columns): 64 contiguous bytes per row per load across a
    /// quad. The reduction over k is free to pair columns in any order as long as the weights and X agree, so
    /// k-step i (0 … 3) of the super-tile gives the mma group t the super-tile's group 4t + i and group t + 4 its
    /// group 16 + 4t + i — exactly word i of each of the lane's loads, the A fragment PTX wants (a0: row g, group
    /// t; a1: row g + 8, group t; a2: row g, group t + 4; a3: row g + 8, group t + 4). The metadata of a row's
    /// super-tile is 8 uint16 of the packed indices (one per 16 columns, group j's two indices at bits 4j); k-step
    /// i wants nibble i of each, which a 4 × 4 nibble transpose of each half lays out as PTX's metadata words
    /// (sparsity selector 0: lane 4g holds groups 0–3, lane 4g + 1 groups 4–7, row g in the low 16 bits and g + 8 in
    /// the high). X (the B operand: lane holds k 8j + 2t, + 1 of token g, j = 0 … 3) is read as 16 bytes of each
    /// token's row per j and exchanged with the neighbouring lane, since the pairs a lane needs alternate with its
    /// neighbour's. The warps' partial sums meet in shared memory, written as `skinny_store` writes them.
    static let skinnySparseTensorCore = #"""
    #if defined(ELEMENT_BF16) || defined(ELEMENT_F16)
    #define MMA_NTILES 4

    // PTX helpers: begin (KernelEmulationTests swaps this block for host versions)
    #ifdef ELEMENT_BF16
    #define SPARSE_MMA_TYPE "bf16"
    #else
    #define SPARSE_MMA_TYPE "f16"
    #endif
    // d[16 × 8] += A[16 × 32, 2:4: 16 × 16 kept] · b[32 × 8], metadata e, sparsity selector 0.
    static __device__ __forceinline__ void mma_sp16832(float* d, const unsigned* a, const unsigned* b, unsigned e) {
    #if __CUDA_ARCH__ >= 800
        asm("mma.sp.sync.aligned.m16n8k32.row.col.f32." SPARSE_MMA_TYPE "." SPARSE_MMA_TYPE ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x0;"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e));
    #else
        __trap();  // (the route is offered only on sm_80 and later)
    #endif
    }
    // PTX helpers: end

    // A 4 × 4 matrix of nibbles, row r in bits 16r … 16r + 15 (nibble c at 16r + 4c), transposed.
    static __device__ __forceinline__ unsigned long long transpose_nibbles(unsigned long long x) {
        unsigned long long t = ((x >> 12) ^ x) & 0x0000F0F00000F0F0ull;  // each 2 × 2 block transposed
        x ^= t ^ (t << 12);
        t = ((x >> 24) ^ x) & 0x00000000FF00FF00ull;                     // the off-diagonal blocks swapped
        return x ^ t ^ (t << 24);
    }

    static __device__ __forceinline__ unsigned word_of(uint4 q, int i) { return i == 0 ? q.x : i == 1 ? q.y : i == 2 ? q.z : q.w; }

    // One lane's share of a super-tile's weights: kept values of rows g and g + 8 (groups t, t + 4 of 16 bytes each) and,
    // on lanes t < 2, the packed indices of groups 16t … 16t + 15 of both rows (zeros for rows past the end).
    struct SuperTile {
        uint4 a00, a01, a10, a11;
        unsigned long long m0, m1;
    };

    static __device__ __forceinline__ SuperTile load_supertile(const uint4* w0, const uint4* w1, const unsigned long long* m0,
                                                              const unsigned long long* m1, bool v0, bool v1, i64 s, int t) {
        SuperTile q;
        uint4 zero;
        zero.x = zero.y = zero.z = zero.w = 0u;
        q.a00 = v0 ? w0[8 * s + t] : zero;
        q.a01 = v0 ? w0[8 * s + 4 + t] : zero;
        q.a10 = v1 ? w1[8 * s + t] : zero;
        q.a11 = v1 ? w1[8 * s + 4 + t] : zero;
        q.m0 = t < 2 && v0 ? m0[2 * s + t] : 0ull;
        q.m1 = t < 2 && v1 ? m1[2 * s + t] : 0ull;
        return q;
    }

    // y[t, r] = Σ_k x[t, k]·W[r, k] for t < tokens ≤ 32, written as skinny_24_matmul writes it (y32 float sums, or
    // y with bias / accumulate). W 2:4: values [rows, k/2], indices packed 2 bits each (one uint16 per 16 columns); k a
    // multiple of 128; x, values 16-byte and indices 8-byte aligned. Grid: one block per 16 rows; dynamic shared
    // memory: warps · 16 · 8·⌈tokens/8⌉ floats.
    extern "C" __global__ void skinny_24_mma(const T* x, const T* values, const unsigned short* indices, const T* bias, T* y,
                                             float* y32, long long tokens, long long rows, long long k, long long y32_stride,
                                             int accumulate) {
        DYNAMIC_SHARED(staged);
        float* partial = (float*)staged;
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
        const int g = lane >> 2, t = lane & 3;
        const int ntiles = (int)((tokens + 7) / 8), width = 8 * ntiles;
        const i64 first = (i64)blockIdx.x * 16, r0 = first + g, r1 = r0 + 8;
        const bool v0 = r0 < rows, v1 = r1 < rows;
        const i64 half = k / 2, packed = k / 16, supertiles = k / 128;
        const uint4* w0 = (const uint4*)(values + (v0 ? r0 : 0) * half);
        const uint4* w1 = (const uint4*)(values + (v1 ? r1 : 0) * half);
        const unsigned long long* m0 = (const unsigned long long*)(indices + (v0 ? r0 : 0) * packed);
        const unsigned long long* m1 = (const unsigned long long*)(indices + (v1 ? r1 : 0) * packed);
        uint4 zero;
        zero.x = zero.y = zero.z = zero.w = 0u;
        float acc[MMA_NTILES][4];
        #pragma unroll
        for (int n = 0; n < MMA_NTILES; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
        // The next super-tile's weights are loaded before this one's products, so two super-tiles' bytes are in flight
        // per warp: a warp takes only a few super-tiles, and with one in flight the kernel drew ~1.8 TB/s on an H100.
        SuperTile next = {};
        if (warp < supertiles) next = load_supertile(w0, w1, m0, m1, v0, v1, warp, t);
        for (i64 s = warp; s < supertiles; s += warps) {
            const SuperTile cur = next;
            if (s + warps < supertiles) next = load_supertile(w0, w1, m0, m1, v0, v1, s + warps, t);
            // Metadata: lanes t = 0 and 1 hold groups 0–15 and 16–31 (uint16 0–3 and 4–7) of rows g and g + 8.
            const unsigned long long e0 = transpose_nibbles(cur.m0), e1 = transpose_nibbles(cur.m1);
            #pragma unroll
            for (int n = 0; n < MMA_NTILES; ++n) {
                if (n < ntiles) {  // (the same for the whole warp: every lane takes part in the shuffles)
                    const i64 token = 8 * n + g;
                    const uint4* xr = (const uint4*)(x + (token < tokens ? token : 0) * k + 128 * s);
                    unsigned b[4][4];  // [j][k-step i]
                    #pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        // Columns 32j + 8t … 32j + 8t + 7 of the super-tile; k-step i wants pair 2i + (t & 1) of the
                        // 16 columns at 32j + 16(t / 2): half of them here, half in lane t ^ 1.
                        const uint4 q = token < tokens ? xr[4 * j + t] : zero;
                        const bool odd = t & 1;
                        const unsigned first_pair = __shfl_xor_sync(0xFFFFFFFFu, odd ? q.x : q.y, 1);
                        const unsigned second_pair = __shfl_xor_sync(0xFFFFFFFFu, odd ? q.z : q.w, 1);
                        b[j][0] = odd ? first_pair : q.x;
                        b[j][1] = odd ? second_pair : q.z;
                        b[j][2] = odd ? q.y : first_pair;
                        b[j][3] = odd ? q.w : second_pair;
                    }
                    #pragma unroll
                    for (int i = 0; i < 4; ++i) {
                        const unsigned a[4] = {word_of(cur.a00, i), word_of(cur.a10, i), word_of(cur.a01, i), word_of(cur.a11, i)};
                        const unsigned bi[4] = {b[0][i], b[1][i], b[2][i], b[3][i]};
                        const unsigned e = (unsigned)((e0 >> (16 * i)) & 0xFFFFu) | ((unsigned)((e1 >> (16 * i)) & 0xFFFFu) << 16);
                        mma_sp16832(acc[n], a, bi, e);
                    }
                }
            }
        }
        // Each warp's sums (rows g, g + 8; tokens 8n + 2t, + 1) to shared memory, then summed over the warps.
        #pragma unroll
        for (int n = 0; n < MMA_NTILES; ++n) {
            if (n < ntiles) {
                float* p = partial + (i64)warp * 16 * width + 8 * n + 2 * t;
                p[g * width] = acc[n][0];
                p[g * width + 1] = acc[n][1];
                p[(g + 8) * width] = acc[n][2];
                p[(g + 8) * width + 1] = acc[n][3];
            }
        }
        __syncthreads();
        for (i64 e = threadIdx.x; e < 16 * tokens; e += blockDim.x) {
            const i64 row = e / tokens, token = e - row * tokens, r = first + row;
            if (r >= rows) continue;
            float sum = 0.0f;
            for (int w = 0; w < warps; ++w) sum += partial[((i64)w * 16 + row) * width + token];
            if (y32) {
                y32[token * y32_stride + r] = sum;
            } else {
                T* out = y + token * rows + r;
                if (accumulate) sum += to_float(*out);
                if (bias) sum += to_float(bias[r]);
                *out = from_float<T>(sum);
            }
        }
    }
    #endif
    """#
}
