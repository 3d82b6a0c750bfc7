extension KernelSources {
    /// Decoding's skinny GEMMs: a few rows of activations (1–8 per launch) against a 2:4 matrix, reading its values
    /// and 2-bit slot indices once, at memory speed (and the same against a dense matrix). cuSPARSELt's tensor-core tiles are built for many rows and lose to
    /// the dense GEMM there (0.46–1.04x measured on an H100 at T ≤ 16), while a 2:4 bf16 matrix held as values and
    /// 2-bit indices is 0.5625x of the dense bytes: what a decode step, bound by reading the weights, can gain.
    static let skinnySparse = #"""
    #if !defined(ELEMENT_FLOAT)
    #define SKINNY_TOKENS 8
    #define SKINNY_UNROLL 4

    // The 16-bit element at position i (0…3) of the four packed in (lo, hi), widened to float.
    static __device__ __forceinline__ float skinny_pick(unsigned lo, unsigned hi, unsigned i) {
        unsigned w = (i & 2u) ? hi : lo;
        T v;
        v.bits = (unsigned short)((i & 1u) ? (w >> 16) : (w & 0xFFFFu));
        return to_float(v);
    }
    static __device__ __forceinline__ float skinny_low(unsigned w) { T v; v.bits = (unsigned short)(w & 0xFFFFu); return to_float(v); }
    static __device__ __forceinline__ float skinny_high(unsigned w) { T v; v.bits = (unsigned short)(w >> 16); return to_float(v); }

    // Row r's sums, one per token in each lane's `acc`, summed over the warp and written by lane t: with y32 set, float
    // sums at y32[t·y32_stride + r]; otherwise y[t·rows + r] = sum (+ y[t·rows + r] when accumulate) (+ bias[r]),
    // ReLU'd when relu is set.
    static __device__ __forceinline__ void skinny_store(const float* acc, int lane, i64 r, i64 tokens, i64 rows, const T* bias, T* y,
                                                        float* y32, i64 y32_stride, int accumulate, int relu) {
        #pragma unroll
        for (int t = 0; t < SKINNY_TOKENS; ++t) {
            if (t < tokens) {  // (the same for the whole warp: every lane takes part in the shuffles)
                float sum = warp_sum(acc[t]);
                if (lane == t) {
                    if (y32) {
                        y32[t * y32_stride + r] = sum;
                    } else {
                        T* out = y + t * rows + r;
                        if (accumulate) sum += to_float(*out);
                        if (bias) sum += to_float(bias[r]);
                        if (relu) sum = fmaxf(sum, 0.0f);
                        *out = from_float<T>(sum);
                    }
                }
            }
        }
    }

    // x's tokens·k elements copied into the block's dynamic shared memory (16 bytes at a time), for every warp of the
    // block to read there.
    static __device__ __forceinline__ uint4* skinny_staged_x(const T* x, i64 tokens, i64 k) {
        DYNAMIC_SHARED(staged);
        uint4* xs = (uint4*)staged;
        for (i64 i = threadIdx.x; i < tokens * k / 8; i += blockDim.x) xs[i] = ((const uint4*)x)[i];
        __syncthreads();
        return xs;
    }

    // y[t, r] = Σ_k x[t, k]·W[r, k] for t < tokens ≤ SKINNY_TOKENS. x [tokens, k] (read through `xv`: global or
    // shared memory); W 2:4 as its values [rows, k/2] and its slot indices packed 2 bits each (`pack_slot_indices`: one
    // uint16 per 16 columns, slot s of the chunk at bits 2s); k a multiple of 16 and every pointer 16-byte aligned. One
    // warp per row (grid-stride over rows): lane l takes the 16-column chunks l, l + 32, …, each a 16-byte load of
    // values and a 2-byte load of indices (UNROLL chunks in flight), with 32 bytes of every token's x.
    // The result as skinny_store writes it (y32: float sums the merged layer's epilogue finishes).
    template <int UNROLL>
    __device__ void skinny_24_rows(const uint4* xv, const T* values, const unsigned short* indices, const T* bias, T* y, float* y32,
                                   i64 tokens, i64 rows, i64 k, i64 y32_stride, int accumulate) {
        int lane = threadIdx.x & 31;
        i64 warps = (i64)gridDim.x * (blockDim.x >> 5), chunks = k / 16;
        for (i64 r = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warps) {
            const uint4* vr = (const uint4*)(values + r * (k / 2));
            const unsigned short* ir = indices + r * chunks;
            float acc[SKINNY_TOKENS];
            #pragma unroll
            for (int t = 0; t < SKINNY_TOKENS; ++t) acc[t] = 0.0f;
            for (i64 first = lane; first < chunks; first += 32 * UNROLL) {
                uint4 w[UNROLL];
                unsigned m[UNROLL];
                #pragma unroll
                for (int u = 0; u < UNROLL; ++u) {
                    i64 c = first + 32 * u;
                    if (c < chunks) { w[u] = vr[c]; m[u] = ir[c]; } else { w[u].x = w[u].y = w[u].z = w[u].w = 0u; m[u] = 0u; }
                }
                #pragma unroll
                for (int u = 0; u < UNROLL; ++u) {
                    i64 c = first + 32 * u;
                    if (c < chunks) {
                        float v[8] = {skinny_low(w[u].x), skinny_high(w[u].x), skinny_low(w[u].y), skinny_high(w[u].y),
                                      skinny_low(w[u].z), skinny_high(w[u].z), skinny_low(w[u].w), skinny_high(w[u].w)};
                        unsigned s = m[u];
                        #pragma unroll
                        for (int t = 0; t < SKINNY_TOKENS; ++t) {
                            if (t < tokens) {
                                const uint4* xp = xv + t * (k / 8) + 2 * c;
                                uint4 a = xp[0], b = xp[1];  // columns 16c … 16c + 7, then 16c + 8 … 16c + 15
                                acc[t] += v[0] * skinny_pick(a.x, a.y, s & 3u) + v[1] * skinny_pick(a.x, a.y, (s >> 2) & 3u)
                                        + v[2] * skinny_pick(a.z, a.w, (s >> 4) & 3u) + v[3] * skinny_pick(a.z, a.w, (s >> 6) & 3u)
                                        + v[4] * skinny_pick(b.x, b.y, (s >> 8) & 3u) + v[5] * skinny_pick(b.x, b.y, (s >> 10) & 3u)
                                        + v[6] * skinny_pick(b.z, b.w, (s >> 12) & 3u) + v[7] * skinny_pick(b.z, b.w, (s >> 14) & 3u);
                            }
                        }
                    }
                }
            }
            skinny_store(acc, lane, r, tokens, rows, bias, y, y32, y32_stride, accumulate, 0);
        }
    }

    // The rows with x read from global memory by every warp (L1 and L2 serve it), SKINNY_UNROLL chunks in flight.
    extern "C" __global__ void skinny_24_matmul(const T* x, const T* values, const unsigned short* indices, const T* bias, T* y,
                                                float* y32, long long tokens, long long rows, long long k, long long y32_stride,
                                                int accumulate) {
        skinny_24_rows<SKINNY_UNROLL>((const uint4*)x, values, indices, bias, y, y32, tokens, rows, k, y32_stride, accumulate);
    }

    // The same with x staged in shared memory first (dynamic shared memory: tokens·k elements): every warp of the block
    // reads its x there instead of from L2 — with one warp per row, x's reads from L2 (a whole copy of x per row)
    // outweigh the weights' own bytes. Blocks of 512 threads (16 rows at a time, grid-stride over rows, so a block's x
    // serves all its rows) and SKINNY_STAGED_UNROLL chunks in flight per lane.
    #define SKINNY_STAGED_UNROLL 8
    extern "C" __global__ void skinny_24_matmul_staged(const T* x, const T* values, const unsigned short* indices, const T* bias,
                                                       T* y, float* y32, long long tokens, long long rows, long long k,
                                                       long long y32_stride, int accumulate) {
        skinny_24_rows<SKINNY_STAGED_UNROLL>(skinny_staged_x(x, tokens, k), values, indices, bias, y, y32, tokens, rows, k, y32_stride, accumulate);
    }

    // The dense skinny GEMM: y[t, r] = Σ_k x[t, k]·W[r, k] (+ bias[r]), ReLU'd when relu is set, for t < tokens ≤
    // SKINNY_TOKENS; W dense [rows, k], k a multiple of 8 and every pointer 16-byte aligned. cuBLASLt reaches about a
    // third of the memory bandwidth at one row (a decode step's 2048×2048 projections on an H100), where a GEMV is
    // bound by reading W once. x is staged in shared memory (tokens·k elements) as in the 2:4 kernel; one warp per row
    // (16 a block, grid-stride), lane l takes the 8-column chunks l, l + 32, … — 16 bytes of W each, UNROLL in flight.
    extern "C" __global__ void skinny_dense_matmul_staged(const T* x, const T* w, const T* bias, T* y, long long tokens, long long rows,
                                                          long long k, int relu) {
        const uint4* xs = skinny_staged_x(x, tokens, k);
        int lane = threadIdx.x & 31;
        i64 warps = (i64)gridDim.x * (blockDim.x >> 5), chunks = k / 8;
        for (i64 r = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warps) {
            const uint4* wr = (const uint4*)(w + r * k);
            float acc[SKINNY_TOKENS];
            #pragma unroll
            for (int t = 0; t < SKINNY_TOKENS; ++t) acc[t] = 0.0f;
            for (i64 first = lane; first < chunks; first += 32 * SKINNY_STAGED_UNROLL) {
                uint4 v[SKINNY_STAGED_UNROLL];
                #pragma unroll
                for (int u = 0; u < SKINNY_STAGED_UNROLL; ++u) {
                    i64 c = first + 32 * u;
                    if (c < chunks) v[u] = wr[c]; else v[u].x = v[u].y = v[u].z = v[u].w = 0u;
                }
                #pragma unroll
                for (int u = 0; u < SKINNY_STAGED_UNROLL; ++u) {
                    i64 c = first + 32 * u;
                    if (c < chunks) {
                        float f[8] = {skinny_low(v[u].x), skinny_high(v[u].x), skinny_low(v[u].y), skinny_high(v[u].y),
                                      skinny_low(v[u].z), skinny_high(v[u].z), skinny_low(v[u].w), skinny_high(v[u].w)};
                        #pragma unroll
                        for (int t = 0; t < SKINNY_TOKENS; ++t) {
                            if (t < tokens) {
                                uint4 a = xs[t * chunks + c];
                                acc[t] += f[0] * skinny_low(a.x) + f[1] * skinny_high(a.x) + f[2] * skinny_low(a.y) + f[3] * skinny_high(a.y)
                                        + f[4] * skinny_low(a.z) + f[5] * skinny_high(a.z) + f[6] * skinny_low(a.w) + f[7] * skinny_high(a.w);
                            }
                        }
                    }
                }
            }
            skinny_store(acc, lane, r, tokens, rows, bias, y, nullptr, 0, 0, relu);
        }
    }

    // The merged sparse + low-rank layer from the skinny GEMM over [W; Lᵀ]: y[t, o] = z[t, o] + scale·Σ_j z[t, out + j]·up[j, o]
    // (+ bias[o]) for o < out; z [tokens, out + rank] float (X·Wᵀ, then X·L), up [rank, out]. A block takes 64 outputs
    // (two a lane: a warp reads 128 contiguous bytes of a row of up) and splits the rank over its warps (8 at most),
    // 8 tokens at a time; the warps' sums meet in shared memory. (One thread an output summing the whole rank alone
    // left most of the GPU idle at decoding's few tokens.)
    #define EPILOGUE_WARPS 8
    #define EPILOGUE_TOKENS 8
    extern "C" __global__ void skinny_low_rank_epilogue(const float* z, const T* up, const T* bias, T* y, long long tokens,
                                                        long long out, long long rank, float scale) {
        __shared__ float partial[EPILOGUE_WARPS][EPILOGUE_TOKENS][64];
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
        const i64 base = (i64)blockIdx.x * 64, o0 = base + 2 * lane, o1 = o0 + 1, stride = out + rank;
        for (i64 first = 0; first < tokens; first += EPILOGUE_TOKENS) {
            float acc[EPILOGUE_TOKENS][2];
            #pragma unroll
            for (int n = 0; n < EPILOGUE_TOKENS; ++n) acc[n][0] = acc[n][1] = 0.0f;
            #pragma unroll 4
            for (i64 j = warp; j < rank; j += warps) {
                const float u0 = o0 < out ? to_float(up[j * out + o0]) : 0.0f, u1 = o1 < out ? to_float(up[j * out + o1]) : 0.0f;
                #pragma unroll
                for (int n = 0; n < EPILOGUE_TOKENS; ++n) {
                    if (first + n < tokens) {
                        const float p = z[(first + n) * stride + out + j];
                        acc[n][0] += p * u0;
                        acc[n][1] += p * u1;
                    }
                }
            }
            #pragma unroll
            for (int n = 0; n < EPILOGUE_TOKENS; ++n) {
                partial[warp][n][2 * lane] = acc[n][0];
                partial[warp][n][2 * lane + 1] = acc[n][1];
            }
            __syncthreads();
            for (int e = threadIdx.x; e < EPILOGUE_TOKENS * 64; e += blockDim.x) {
                const int n = e / 64, c = e % 64;
                const i64 t = first + n, o = base + c;
                if (t < tokens && o < out) {
                    float low = 0.0f;
                    for (int w = 0; w < warps; ++w) low += partial[w][n][c];
                    y[t * out + o] = from_float<T>(z[t * stride + o] + scale * low + (bias ? to_float(bias[o]) : 0.0f));
                }
            }
            __syncthreads();
        }
    }
    #endif
    """#
}
