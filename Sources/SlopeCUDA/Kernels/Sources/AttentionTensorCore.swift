extension KernelSources {
    /// Fused attention on tensor cores for bf16/fp16 (FlashAttention-2's algorithm): scores and probabilities
    /// live in registers only; the backward recomputes them from the saved log-sum-exp.
    ///
    /// Every product is `mma.sync.m16n8k16` with fp32 accumulation. Tiles of K/V (or Q/dO) are copied to shared
    /// memory with `cp.async` into two buffers, so the next tile loads while this one is used, and the products'
    /// B operands are read with `ldmatrix` (`.trans` where the tile's rows are the reduction dimension). Shared
    /// rows are padded by 16 bytes, which puts the 8 rows an `ldmatrix` reads in distinct banks.
    static let attentionTensorCore = #"""
    #if defined(ELEMENT_BF16) || defined(ELEMENT_F16)
    struct AttentionSizes { int batch, tq, tk, hq, hkv, causal; float scale; };
    #define SIZES_PARAMS int batch, int tq, int tk, int hq, int hkv, int causal, float scale
    #define SIZES AttentionSizes{batch, tq, tk, hq, hkv, causal, scale}
    typedef unsigned short u16;
    #define LOG2E 1.4426950408889634f

    // PTX helpers: begin (KernelEmulationTests swaps this block for host versions)
    #ifdef ELEMENT_BF16
    #define MMA_TYPE "bf16"
    static __device__ __forceinline__ unsigned pack2(float lo, float hi) {
        unsigned r; asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo)); return r;
    }
    #else
    #define MMA_TYPE "f16"
    static __device__ __forceinline__ unsigned pack2(float lo, float hi) {
        unsigned r; asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo)); return r;
    }
    #endif

    // d[16 × 8] += a[16 × 16] · b[16 × 8] (fragments in PTX's m16n8k16 layout).
    static __device__ __forceinline__ void mma16816(float* d, const unsigned* a, unsigned b0, unsigned b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." MMA_TYPE "." MMA_TYPE ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }

    static __device__ __forceinline__ unsigned shared_address(const void* p) {
        unsigned address;
        asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(address) : "l"(p));
        return address;
    }
    // 16 bytes global → shared without passing through registers; zero-fills when !valid.
    static __device__ __forceinline__ void copy16_async(void* shared, const void* global, bool valid) {
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(shared_address(shared)), "l"(global), "r"(valid ? 16 : 0));
    }
    static __device__ __forceinline__ void commit_copies() { asm volatile("cp.async.commit_group;"); }
    template <int PENDING> static __device__ __forceinline__ void wait_copies() { asm volatile("cp.async.wait_group %0;" :: "n"(PENDING)); }

    // Four 8×8 16-bit matrices; lane l gives the address of row l % 8 of matrix l / 8.
    static __device__ __forceinline__ void load_matrices(unsigned* r, const u16* p) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(p)));
    }
    static __device__ __forceinline__ void load_matrices_transposed(unsigned* r, const u16* p) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(p)));
    }
    static __device__ __forceinline__ float exp2_fast(float x) {
        float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y;
    }
    // PTX helpers: end

    // Starts copying rows [first, first + ROWS) of head `head` of a [B·len, heads·D] tensor into `tile`
    // (row stride D + 8); rows past `len` become zeros.
    template <int D, int ROWS>
    __device__ __forceinline__ void stage_tile(u16* tile, const T* src, int b, int len, int heads, int head, int first) {
        static_assert(ROWS * (D / 8) % 128 == 0, "whole rounds of 128 threads");
        const u16* base = (const u16*)src + (i64)head * D;
        #pragma unroll
        for (int round = 0; round < ROWS * (D / 8) / 128; ++round) {
            int e = round * 128 + threadIdx.x, r = e / (D / 8), c = e % (D / 8), row = first + r;
            copy16_async(tile + r * (D + 8) + c * 8, base + ((i64)b * len + min(row, len - 1)) * heads * D + c * 8, row < len);
        }
    }

    // Tiles of `tile` keys that query rows up to `lastRow` see (causal rows see keys up to tk − tq + row).
    static __device__ __forceinline__ int key_tiles(const AttentionSizes& s, int lastRow, int tile) {
        int lastKey = s.causal ? min(s.tk - 1, s.tk - s.tq + lastRow) : s.tk - 1;
        return lastKey < 0 ? 0 : lastKey / tile + 1;
    }

    // Starts copying the K and V tiles of `tile` keys from key `first` and commits them as one group.
    template <int D, int TILE>
    __device__ __forceinline__ void stage_key_values(u16* kTile, u16* vTile, const T* k, const T* v, int b, const AttentionSizes& s,
                                                     int kvh, int first) {
        stage_tile<D, TILE>(kTile, k, b, s.tk, s.hkv, kvh, first);
        stage_tile<D, TILE>(vTile, v, b, s.tk, s.hkv, kvh, first);
        commit_copies();
    }

    // A-operand fragments of rows r0 and r0 + 8 (clamped to len − 1), all of D, straight from global memory.
    template <int D>
    __device__ __forceinline__ void load_rows(unsigned (&frag)[D / 16][4], const T* src, int b, int len, int heads, int head, int r0, int t) {
        const unsigned* p0 = (const unsigned*)((const u16*)src + ((i64)b * len + min(r0, len - 1)) * heads * D + (i64)head * D);
        const unsigned* p1 = (const unsigned*)((const u16*)src + ((i64)b * len + min(r0 + 8, len - 1)) * heads * D + (i64)head * D);
        #pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            frag[kk][0] = p0[kk * 8 + t]; frag[kk][1] = p1[kk * 8 + t];
            frag[kk][2] = p0[kk * 8 + 4 + t]; frag[kk][3] = p1[kk * 8 + 4 + t];
        }
    }

    // Rows r0 and r0 + 8 (accumulator layout, all of D) into one head of a [B·len, heads·D] tensor.
    template <int D>
    __device__ __forceinline__ void store_rows(T* dst, const float (&acc)[D / 8][4], float scale0, float scale1, int b, int len,
                                               int heads, int head, int r0, int t) {
        u16* p0 = (u16*)dst + ((i64)b * len + r0) * heads * D + (i64)head * D;
        u16* p1 = p0 + (i64)8 * heads * D;
        #pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
            if (r0 < len) *(unsigned*)(p0 + dt * 8 + t * 2) = pack2(acc[dt][0] * scale0, acc[dt][1] * scale0);
            if (r0 + 8 < len) *(unsigned*)(p1 + dt * 8 + t * 2) = pack2(acc[dt][2] * scale1, acc[dt][3] * scale1);
        }
    }

    // acc[m][16 × N] = a[m][16 × D] · tileᵀ for MT row blocks m, where tile is [N][D] (Q·Kᵀ, K·Qᵀ, dO·Vᵀ …).
    template <int D, int N, int MT>
    __device__ __forceinline__ void product_transposed(float (&acc)[MT][N / 8][4], const unsigned (&a)[MT][D / 16][4], const u16* tile, int lane) {
        #pragma unroll
        for (int m = 0; m < MT; ++m) {
            #pragma unroll
            for (int nt = 0; nt < N / 8; ++nt) acc[m][nt][0] = acc[m][nt][1] = acc[m][nt][2] = acc[m][nt][3] = 0.0f;
        }
        const int which = lane >> 3, row = lane & 7;
        #pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            #pragma unroll
            for (int np = 0; np < N / 16; ++np) {
                unsigned b[4];  // B fragments of columns 16·np … +8 and +8 … +16
                load_matrices(b, tile + ((2 * np + (which >> 1)) * 8 + row) * (D + 8) + kk * 16 + (which & 1) * 8);
                #pragma unroll
                for (int m = 0; m < MT; ++m) {
                    mma16816(acc[m][2 * np], a[m][kk], b[0], b[1]);
                    mma16816(acc[m][2 * np + 1], a[m][kk], b[2], b[3]);
                }
            }
        }
    }

    // out[m][16 × D] += p[m][16 × K] · tile, tile [K][D]; p in accumulator layout is rounded to 16 bits.
    template <int D, int K, int MT>
    __device__ __forceinline__ void accumulate_product(float (&out)[MT][D / 8][4], const float (&p)[MT][K / 8][4], const u16* tile, int lane) {
        const int which = lane >> 3, row = lane & 7;
        #pragma unroll
        for (int ks = 0; ks < K / 16; ++ks) {
            unsigned a[MT][4];  // an accumulator tile pair is already an A fragment
            #pragma unroll
            for (int m = 0; m < MT; ++m) {
                a[m][0] = pack2(p[m][2 * ks][0], p[m][2 * ks][1]);
                a[m][1] = pack2(p[m][2 * ks][2], p[m][2 * ks][3]);
                a[m][2] = pack2(p[m][2 * ks + 1][0], p[m][2 * ks + 1][1]);
                a[m][3] = pack2(p[m][2 * ks + 1][2], p[m][2 * ks + 1][3]);
            }
            #pragma unroll
            for (int dp = 0; dp < D / 16; ++dp) {
                unsigned b[4];
                load_matrices_transposed(b, tile + (ks * 16 + (which & 1) * 8 + row) * (D + 8) + (2 * dp + (which >> 1)) * 8);
                #pragma unroll
                for (int m = 0; m < MT; ++m) {
                    mma16816(out[m][2 * dp], a[m], b[0], b[1]);
                    mma16816(out[m][2 * dp + 1], a[m], b[2], b[3]);
                }
            }
        }
    }

    // out[16 × D] += a[16 × K] · tile, with a read from shared memory (row stride aStride) and tile [K][D].
    template <int D, int K>
    __device__ __forceinline__ void accumulate_shared_product(float (&out)[D / 8][4], const u16* a, int aStride, const u16* tile, int lane) {
        const int which = lane >> 3, row = lane & 7;
        #pragma unroll
        for (int ks = 0; ks < K / 16; ++ks) {
            unsigned af[4];
            load_matrices(af, a + ((which & 1) * 8 + row) * aStride + ks * 16 + (which >> 1) * 8);
            #pragma unroll
            for (int dp = 0; dp < D / 16; ++dp) {
                unsigned b[4];
                load_matrices_transposed(b, tile + (ks * 16 + (which & 1) * 8 + row) * (D + 8) + (2 * dp + (which >> 1)) * 8);
                mma16816(out[2 * dp], af, b[0], b[1]);
                mma16816(out[2 * dp + 1], af, b[2], b[3]);
            }
        }
    }

    // Forward: O = softmax(scale·Q·Kᵀ)·V and the log-sum-exp. 4 warps; each warp owns MT blocks of 16 query
    // rows (BM = 64·MT rows per block) and walks K/V in tiles of BN keys with an online softmax.
    // Grid (ceil(tq / BM), hq, batch), block 128, 8·BN·(D + 8) bytes of dynamic shared memory (K and V tiles,
    // two of each); the blocks with the longest causal rows start first.
    template <int D, int MT, int BN>
    __device__ void attention_forward_tc(const T* q, const T* k, const T* v, T* o, float* lse, AttentionSizes s) {
        constexpr int BM = 64 * MT;
        DYNAMIC_SHARED(smem);
        u16* ks[2] = {(u16*)smem, (u16*)smem + BN * (D + 8)};
        u16* vs[2] = {ks[1] + BN * (D + 8), ks[1] + 2 * BN * (D + 8)};
        int b = blockIdx.z, h = blockIdx.y, kvh = h / (s.hq / s.hkv);
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
        int firstRow = (gridDim.x - 1 - blockIdx.x) * BM;
        unsigned qa[MT][D / 16][4];
        #pragma unroll
        for (int m = 0; m < MT; ++m) load_rows<D>(qa[m], q, b, s.tq, s.hq, h, firstRow + (warp * MT + m) * 16 + g, t);
        float acc[MT][D / 8][4], rowMax[MT][2], rowSum[MT][2];
        #pragma unroll
        for (int m = 0; m < MT; ++m) {
            #pragma unroll
            for (int dt = 0; dt < D / 8; ++dt) acc[m][dt][0] = acc[m][dt][1] = acc[m][dt][2] = acc[m][dt][3] = 0.0f;
            rowMax[m][0] = rowMax[m][1] = neg_inf();
            rowSum[m][0] = rowSum[m][1] = 0.0f;
        }
        const float scaleLog2 = s.scale * LOG2E;  // scores in log2 units: exp(x) = 2^(x·log2 e)
        int offset = s.tk - s.tq;
        int tiles = key_tiles(s, firstRow + BM - 1, BN);
        if (tiles > 0) stage_key_values<D, BN>(ks[0], vs[0], k, v, b, s, kvh, 0);
        for (int j = 0; j < tiles; ++j) {
            if (j + 1 < tiles) {
                stage_key_values<D, BN>(ks[(j + 1) & 1], vs[(j + 1) & 1], k, v, b, s, kvh, (j + 1) * BN);
                wait_copies<1>();
            } else {
                wait_copies<0>();
            }
            __syncthreads();
            int first = j * BN;
            float sc[MT][BN / 8][4];
            product_transposed<D, BN, MT>(sc, qa, ks[j & 1], lane);
            // Only tiles that reach past tk or past the block's first row on the causal diagonal need a mask.
            bool edge = first + BN > s.tk || (s.causal && first + BN - 1 > offset + firstRow);
            #pragma unroll
            for (int m = 0; m < MT; ++m) {
                int r0 = firstRow + (warp * MT + m) * 16 + g;
                float tileMax[2] = {neg_inf(), neg_inf()};
                #pragma unroll
                for (int nt = 0; nt < BN / 8; ++nt) {
                    #pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        float x = sc[m][nt][e] * scaleLog2;
                        if (edge) {
                            int key = first + nt * 8 + t * 2 + (e & 1), row = r0 + (e >> 1) * 8;
                            if (key >= s.tk || (s.causal && key > offset + row)) x = neg_inf();
                        }
                        sc[m][nt][e] = x;
                        tileMax[e >> 1] = fmaxf(tileMax[e >> 1], x);
                    }
                }
                #pragma unroll
                for (int half = 0; half < 2; ++half) {
                    float tm = fmaxf(tileMax[half], __shfl_xor_sync(0xffffffffu, tileMax[half], 1));
                    tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, 2));
                    float updated = fmaxf(rowMax[m][half], tm);
                    // A row with nothing visible yet keeps −inf: factors 0 and 1, never NaN.
                    float base = updated == neg_inf() ? 0.0f : updated;
                    float correction = exp2_fast(rowMax[m][half] - base);
                    rowMax[m][half] = updated;
                    float sum = 0.0f;
                    #pragma unroll
                    for (int nt = 0; nt < BN / 8; ++nt) {
                        float p0 = exp2_fast(sc[m][nt][2 * half] - base), p1 = exp2_fast(sc[m][nt][2 * half + 1] - base);
                        sc[m][nt][2 * half] = p0; sc[m][nt][2 * half + 1] = p1;
                        sum += p0 + p1;
                    }
                    rowSum[m][half] = rowSum[m][half] * correction + sum;  // per-thread columns; the quad is summed at the end
                    #pragma unroll
                    for (int dt = 0; dt < D / 8; ++dt) { acc[m][dt][2 * half] *= correction; acc[m][dt][2 * half + 1] *= correction; }
                }
            }
            accumulate_product<D, BN, MT>(acc, sc, vs[j & 1], lane);  // O += P·V
            __syncthreads();  // the buffer is refilled two tiles on
        }
        #pragma unroll
        for (int m = 0; m < MT; ++m) {
            int r0 = firstRow + (warp * MT + m) * 16 + g;
            float inverse[2];
            #pragma unroll
            for (int half = 0; half < 2; ++half) {
                float l = rowSum[m][half];
                l += __shfl_xor_sync(0xffffffffu, l, 1);
                l += __shfl_xor_sync(0xffffffffu, l, 2);
                inverse[half] = l > 0.0f ? 1.0f / l : 0.0f;
                int row = r0 + half * 8;
                if (t == 0 && row < s.tq) lse[((i64)b * s.tq + row) * s.hq + h] = (rowMax[m][half] + log2f(l)) / LOG2E;
            }
            store_rows<D>(o, acc[m], inverse[0], inverse[1], b, s.tq, s.hq, h, r0, t);
        }
    }

    // Backward, key-major: each warp owns 16 keys of one KV head and walks the query tiles (of every query head
    // in its group) that see them: Sᵀ = K·Qᵀ, Pᵀ = exp(scale·Sᵀ − lse), dV += Pᵀ·dO, dPᵀ = V·dOᵀ,
    // dSᵀ = Pᵀ ⊙ (dPᵀ − δ)·scale, dK += dSᵀ·Q, in query tiles of QT rows. Grid (ceil(tk / 64), hkv, batch), block 128.
    // With DQ (the one-kernel backward, FlashAttention-2's arrangement) each step also writes dS (16-bit) of the
    // block's 64 keys × QT queries to shared memory, and each warp multiplies 16 query rows of it by the block's
    // K tile and adds the result to a float32 dQ with atomics (dq_accum, zeroed before and converted after):
    // five products per step where this kernel and the query-major one together do seven. Dynamic shared
    // memory (key_major_backward_shared_bytes on the host): Q and dO tiles double-buffered, with DQ the K tile
    // and dS, then lse and δ double-buffered.
    template <int D, int QT, bool DQ>
    __device__ void attention_backward_key_major(const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* delta,
                                                 float* dq_accum, T* dk, T* dv, AttentionSizes s) {
        constexpr int BM = QT, BN = 64, STRIDE = D + 8, DS_STRIDE = BN + 8;
        DYNAMIC_SHARED(smem);
        u16* qs[2] = {(u16*)smem, (u16*)smem + BM * STRIDE};
        u16* gs[2] = {qs[1] + BM * STRIDE, qs[1] + 2 * BM * STRIDE};
        u16* kt = gs[1] + BM * STRIDE;              // with DQ only
        u16* ds = kt + (DQ ? BN * STRIDE : 0);       // with DQ only
        float* lses[2] = {(float*)(ds + (DQ ? BM * DS_STRIDE : 0)), (float*)(ds + (DQ ? BM * DS_STRIDE : 0)) + BM};
        float* deltas[2] = {lses[1] + BM, lses[1] + 2 * BM};
        int b = blockIdx.z, kvh = blockIdx.y, group = s.hq / s.hkv;
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
        int firstKey = blockIdx.x * BN, k0 = firstKey + warp * 16 + g;
        if (DQ) {
            stage_tile<D, BN>(kt, k, b, s.tk, s.hkv, kvh, firstKey);
            commit_copies();
        }
        unsigned ka[1][D / 16][4], va[1][D / 16][4];
        load_rows<D>(ka[0], k, b, s.tk, s.hkv, kvh, k0, t);
        load_rows<D>(va[0], v, b, s.tk, s.hkv, kvh, k0, t);
        float dka[1][D / 8][4], dva[1][D / 8][4];
        #pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
            dka[0][dt][0] = dka[0][dt][1] = dka[0][dt][2] = dka[0][dt][3] = 0.0f;
            dva[0][dt][0] = dva[0][dt][1] = dva[0][dt][2] = dva[0][dt][3] = 0.0f;
        }
        const float scaleLog2 = s.scale * LOG2E;
        int offset = s.tk - s.tq;
        int firstTile = s.causal ? max(0, firstKey - offset) / BM : 0;
        int tilesPerHead = (s.tq + BM - 1) / BM - firstTile;
        int steps = tilesPerHead > 0 ? tilesPerHead * group : 0;
        auto stage = [&](int j, int buffer) {
            int h = kvh * group + j / tilesPerHead, first = (firstTile + j % tilesPerHead) * BM;
            stage_tile<D, BM>(qs[buffer], q, b, s.tq, s.hq, h, first);
            stage_tile<D, BM>(gs[buffer], dout, b, s.tq, s.hq, h, first);
            commit_copies();
            for (int r = threadIdx.x; r < BM; r += 128) {
                int query = first + r;
                i64 at = ((i64)b * s.tq + min(query, s.tq - 1)) * s.hq + h;
                lses[buffer][r] = lse[at] * LOG2E;
                deltas[buffer][r] = delta[at];
            }
        };
        if (steps > 0) stage(0, 0);
        for (int j = 0; j < steps; ++j) {
            if (j + 1 < steps) { stage(j + 1, (j + 1) & 1); wait_copies<1>(); } else { wait_copies<0>(); }
            __syncthreads();
            const int buffer = j & 1, h = kvh * group + j / tilesPerHead, first = (firstTile + j % tilesPerHead) * BM;
            float st[1][BM / 8][4], dpt[1][BM / 8][4];
            product_transposed<D, BM, 1>(st, ka, qs[buffer], lane);   // Sᵀ: 16 keys × BM queries
            product_transposed<D, BM, 1>(dpt, va, gs[buffer], lane);  // dPᵀ = V·dOᵀ
            bool edge = first + BM > s.tq || (s.causal && first < firstKey + BN - 1 - offset);
            #pragma unroll
            for (int nt = 0; nt < BM / 8; ++nt) {
                #pragma unroll
                for (int e = 0; e < 4; ++e) {
                    int c = nt * 8 + t * 2 + (e & 1);
                    float p = exp2_fast(st[0][nt][e] * scaleLog2 - lses[buffer][c]);
                    if (edge) {
                        int query = first + c, key = k0 + (e >> 1) * 8;
                        if (query >= s.tq || (s.causal && key > offset + query)) p = 0.0f;
                    }
                    st[0][nt][e] = p;
                    dpt[0][nt][e] = p * (dpt[0][nt][e] - deltas[buffer][c]) * s.scale;
                    if (DQ) ds[c * DS_STRIDE + warp * 16 + g + (e >> 1) * 8] = from_float<T>(dpt[0][nt][e]).bits;  // dS, not dSᵀ
                }
            }
            accumulate_product<D, BM, 1>(dva, st, gs[buffer], lane);   // dV += Pᵀ·dO
            accumulate_product<D, BM, 1>(dka, dpt, qs[buffer], lane);  // dK += dSᵀ·Q
            if (DQ) {
                __syncthreads();  // dS complete
                for (int r0 = warp * 16; r0 < BM; r0 += 64) {  // this warp's 16 query rows of the tile (none at BM = 32, warps 2, 3)
                    float dqa[D / 8][4];
                    #pragma unroll
                    for (int dt = 0; dt < D / 8; ++dt) dqa[dt][0] = dqa[dt][1] = dqa[dt][2] = dqa[dt][3] = 0.0f;
                    accumulate_shared_product<D, BN>(dqa, ds + r0 * DS_STRIDE, DS_STRIDE, kt, lane);  // dQ part = dS·K
                    #pragma unroll
                    for (int half = 0; half < 2; ++half) {
                        int query = first + r0 + g + half * 8;
                        if (query >= s.tq) continue;
                        float* row = dq_accum + ((i64)b * s.tq + query) * s.hq * D + (i64)h * D;
                        #pragma unroll
                        for (int dt = 0; dt < D / 8; ++dt) {
                            atomicAdd(row + dt * 8 + t * 2, dqa[dt][2 * half]);
                            atomicAdd(row + dt * 8 + t * 2 + 1, dqa[dt][2 * half + 1]);
                        }
                    }
                }
            }
            __syncthreads();  // the Q/dO buffer is refilled two steps on (and dS rewritten next step)
        }
        if (DQ) wait_copies<0>();  // (the K tile, when no query tile sees these keys)
        store_rows<D>(dk, dka[0], 1.0f, 1.0f, b, s.tk, s.hkv, kvh, k0, t);
        store_rows<D>(dv, dva[0], 1.0f, 1.0f, b, s.tk, s.hkv, kvh, k0, t);
    }

    // Backward, query-major: S = Q·Kᵀ, P = exp(scale·S − lse), dP = dO·Vᵀ, dS = P ⊙ (dP − δ)·scale,
    // dQ += dS·K, in key tiles of KT. Grid (ceil(tq / 64), hq, batch), block 128; the longest causal rows
    // start first.
    template <int D, int KT>
    __device__ void attention_backward_q_tc(const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* delta,
                                            T* dq, AttentionSizes s) {
        constexpr int BM = 64, BN = KT;
        __shared__ __align__(16) u16 ks[2][BN * (D + 8)];
        __shared__ __align__(16) u16 vs[2][BN * (D + 8)];
        int b = blockIdx.z, h = blockIdx.y, kvh = h / (s.hq / s.hkv);
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
        int firstRow = (gridDim.x - 1 - blockIdx.x) * BM, r0 = firstRow + warp * 16 + g;
        unsigned qa[1][D / 16][4], ga[1][D / 16][4];
        load_rows<D>(qa[0], q, b, s.tq, s.hq, h, r0, t);
        load_rows<D>(ga[0], dout, b, s.tq, s.hq, h, r0, t);
        float rowLse[2], rowDelta[2];
        #pragma unroll
        for (int half = 0; half < 2; ++half) {
            i64 at = ((i64)b * s.tq + min(r0 + half * 8, s.tq - 1)) * s.hq + h;
            rowLse[half] = lse[at] * LOG2E;
            rowDelta[half] = delta[at];
        }
        float dqa[1][D / 8][4];
        #pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) dqa[0][dt][0] = dqa[0][dt][1] = dqa[0][dt][2] = dqa[0][dt][3] = 0.0f;
        const float scaleLog2 = s.scale * LOG2E;
        int offset = s.tk - s.tq;
        int tiles = key_tiles(s, firstRow + BM - 1, BN);
        if (tiles > 0) stage_key_values<D, BN>(ks[0], vs[0], k, v, b, s, kvh, 0);
        for (int j = 0; j < tiles; ++j) {
            if (j + 1 < tiles) {
                stage_key_values<D, BN>(ks[(j + 1) & 1], vs[(j + 1) & 1], k, v, b, s, kvh, (j + 1) * BN);
                wait_copies<1>();
            } else {
                wait_copies<0>();
            }
            __syncthreads();
            int first = j * BN;
            float sc[1][BN / 8][4], dp[1][BN / 8][4];
            product_transposed<D, BN, 1>(sc, qa, ks[j & 1], lane);  // S = Q·Kᵀ
            product_transposed<D, BN, 1>(dp, ga, vs[j & 1], lane);  // dP = dO·Vᵀ
            bool edge = first + BN > s.tk || (s.causal && first + BN - 1 > offset + firstRow);
            #pragma unroll
            for (int nt = 0; nt < BN / 8; ++nt) {
                #pragma unroll
                for (int e = 0; e < 4; ++e) {
                    float p = exp2_fast(sc[0][nt][e] * scaleLog2 - rowLse[e >> 1]);
                    if (edge) {
                        int key = first + nt * 8 + t * 2 + (e & 1), row = r0 + (e >> 1) * 8;
                        if (key >= s.tk || (s.causal && key > offset + row)) p = 0.0f;
                    }
                    dp[0][nt][e] = p * (dp[0][nt][e] - rowDelta[e >> 1]) * s.scale;
                }
            }
            accumulate_product<D, BN, 1>(dqa, dp, ks[j & 1], lane);  // dQ += dS·K
            __syncthreads();
        }
        store_rows<D>(dq, dqa[0], 1.0f, 1.0f, b, s.tq, s.hq, h, r0, t);
    }

    // δ = rowsum(dO ⊙ O) per (row, head): D / 8 lanes per row, 16 bytes each, summed with shuffles.
    template <int D>
    __device__ void attention_delta_tc(const T* dout, const T* out, float* delta, i64 rowHeads) {
        constexpr int LANES = D / 8;
        i64 total = rowHeads * LANES, stride = (i64)gridDim.x * blockDim.x;
        i64 rounded = (total + 31) / 32 * 32;  // whole warps stay in the loop together for the shuffles
        for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < rounded; e += stride) {
            float sum = 0.0f;
            if (e < total) {
                uint4 a = ((const uint4*)dout)[e], c = ((const uint4*)out)[e];
                const T* x = (const T*)&a;
                const T* y = (const T*)&c;
                #pragma unroll
                for (int i = 0; i < 8; ++i) sum += to_float(x[i]) * to_float(y[i]);
            }
            #pragma unroll
            for (int width = LANES / 2; width > 0; width >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, width);
            if (e < total && e % LANES == 0) delta[e / LANES] = sum;
        }
    }

    // Exported per head dimension; FORWARD's MT and BN set the block's query rows (64·MT) and key tile; the
    // _wide variant's key tile is larger (more dynamic shared memory, half the tile steps).
    #define TC_FORWARD(D, MT, BN) \
    extern "C" __global__ void __launch_bounds__(128) attention_forward_tc_d##D( \
        const T* q, const T* k, const T* v, T* o, float* lse, SIZES_PARAMS) { attention_forward_tc<D, MT, BN>(q, k, v, o, lse, SIZES); }
    #define TC_FORWARD_WIDE(D, MT, BN) \
    extern "C" __global__ void __launch_bounds__(128) attention_forward_tc_d##D##_wide( \
        const T* q, const T* k, const T* v, T* o, float* lse, SIZES_PARAMS) { attention_forward_tc<D, MT, BN>(q, k, v, o, lse, SIZES); }
    // The backward keeps K, V, dK, dV (or Q, dO, dQ) fragments in registers; TILE is the other operand's tile
    // (query rows for dK/dV, keys for dQ), smaller at D = 128 so two buffers of both tiles fit in 48 KB. The
    // one-kernel backward (attention_backward_tc_d<D>) walks query tiles of the same size.
    #define TC_BACKWARD(D, TILE) \
    extern "C" __global__ void __launch_bounds__(128) attention_backward_kv_tc_d##D(const T* q, const T* k, const T* v, \
        const T* dout, const float* lse, const float* delta, T* dk, T* dv, SIZES_PARAMS) { \
        attention_backward_key_major<D, TILE, false>(q, k, v, dout, lse, delta, nullptr, dk, dv, SIZES); } \
    extern "C" __global__ void __launch_bounds__(128) attention_backward_tc_d##D(const T* q, const T* k, const T* v, const T* dout, \
        const float* lse, const float* delta, float* dq_accum, T* dk, T* dv, SIZES_PARAMS) { \
        attention_backward_key_major<D, TILE, true>(q, k, v, dout, lse, delta, dq_accum, dk, dv, SIZES); } \
    extern "C" __global__ void __launch_bounds__(128) attention_backward_q_tc_d##D(const T* q, const T* k, const T* v, \
        const T* dout, const float* lse, const float* delta, T* dq, SIZES_PARAMS) { \
        attention_backward_q_tc<D, TILE>(q, k, v, dout, lse, delta, dq, SIZES); } \
    extern "C" __global__ void attention_delta_tc_d##D(const T* dout, const T* out, float* delta, long long rowHeads) { \
        attention_delta_tc<D>(dout, out, delta, rowHeads); }
    TC_FORWARD(64, 2, 64)
    TC_FORWARD(128, 1, 32)
    TC_FORWARD_WIDE(128, 1, 64)
    TC_BACKWARD(64, 64)
    TC_BACKWARD(128, 32)
    #endif
    """#

    /// Head dimensions of the tensor-core forward, with the query rows each block of 128 threads covers.
    static let tensorCoreForwardBlockRows: [Int: Int] = [64: 128, 128: 64]
    /// Keys per K/V tile of `attention_forward_tc_d<D>`, and of the `_wide` variant where there is one.
    static let tensorCoreForwardKeyTile: [Int: Int] = [64: 64, 128: 32]
    static let tensorCoreWideForwardKeyTile: [Int: Int] = [128: 64]

    /// The forward's dynamic shared memory: K and V tiles of `keys` rows (padded to D + 8), two of each.
    static func tensorCoreForwardSharedBytes(headDimension d: Int, keys: Int) -> Int { 8 * keys * (d + 8) }
    /// Head dimensions the tensor-core backward is instantiated for (64 keys or query rows per block), with the
    /// other operand's tile (TC_BACKWARD's TILE): query rows per step of the key-major kernels, keys per step of
    /// the query-major one.
    static let tensorCoreBackwardTile: [Int: Int] = [64: 64, 128: 32]
    static var tensorCoreBackwardHeadDimensions: Set<Int> { Set(tensorCoreBackwardTile.keys) }

    /// Dynamic shared memory of the key-major backward at head dimension `d`: Q and dO tiles twice, with dQ
    /// (the one-kernel backward) the block's K tile and dS (16-bit), then lse and δ twice (float).
    static func keyMajorBackwardSharedBytes(headDimension d: Int, withQueryGradient: Bool) -> Int {
        let (queries, keys) = (tensorCoreBackwardTile[d] ?? 64, 64)
        let tiles = 4 * queries * (d + 8) + (withQueryGradient ? keys * (d + 8) + queries * (keys + 8) : 0)
        return tiles * 2 + 4 * queries * 4
    }
}
