extension KernelSources {
    /// Rotary embeddings and flash-style attention (forward and backward).
    ///
    /// Attention keeps no [T, T] matrix: each thread owns one query (or key) row in registers, K/V (or Q/dO)
    /// tiles of 32 rows are staged in shared memory as float, and the softmax is computed online. Kernels
    /// are instantiated per head dimension (16, 32, 64, 80, 96, 128) and exported as `<name>_d<D>`.
    static let attention = #"""
    #define TILE 32
    #define ROWS 64

    // Rotate-half RoPE on x [rows, heads·d]; row r sits at offset + r % seq; sign −1 rotates back.
    // One thread per (row, head, i < d/2); angles in double so long positions stay exact.
    extern "C" __global__ void rope(const T* x, T* y, long long rows, long long heads, long long d, long long seq,
                                    long long offset, float base, float sign) {
        i64 half = d / 2;
        GRID_STRIDE(e, rows * heads * half) {
            i64 i = e % half, h = (e / half) % heads, row = e / (half * heads);
            double position = (double)(offset + row % seq);
            double angle = position * pow((double)base, -2.0 * (double)i / (double)d);
            float c = (float)cos(angle), s = sign * (float)sin(angle);
            i64 at = row * heads * d + h * d + i;
            float x1 = to_float(x[at]), x2 = to_float(x[at + half]);
            y[at] = from_float<T>(x1 * c - x2 * s);
            y[at + half] = from_float<T>(x2 * c + x1 * s);
        }
    }

    // The tensor-core route (cuBLASLt GEMMs per batch element; scores [hq, tq, tk] float32 exist only
    // while one batch element is processed). Row r = h·tq + i of the scores; query i sees keys
    // j ≤ tk − tq + i when causal. With causal chunking, scores right of a chunk's last visible key are
    // never computed: kernels read only visible positions.

    // probs = softmax of each visible score row (0 where masked); lse[(b·tq + i)·hq + h] = log Σ exp.
    // One 256-thread block per row, grid = hq·tq.
    extern "C" __global__ void attention_softmax_rows(const float* scores, T* probs, float* lse, long long tq, long long tk,
                                                      long long hq, long long b, int causal) {
        i64 row = blockIdx.x, h = row / tq, i = row - h * tq;
        i64 visible = causal ? tk - tq + i + 1 : tk;
        const float* sr = scores + row * tk;
        T* pr = probs + row * tk;
        // One read for the statistics: each thread keeps an online (max, sum), merged across the block.
        float m = neg_inf(), s = 0.0f;
        for (i64 j = threadIdx.x; j < visible; j += blockDim.x) {
            float x = sr[j];
            if (x > m) { s = s * __expf(m - x) + 1.0f; m = x; } else { s += __expf(x - m); }
        }
        float blockMax = block_max(m);
        s = block_sum(m == neg_inf() ? 0.0f : s * __expf(m - blockMax));
        m = blockMax;
        float inv = 1.0f / s;
        for (i64 j = threadIdx.x; j < tk; j += blockDim.x) pr[j] = from_float<T>(j < visible ? __expf(sr[j] - m) * inv : 0.0f);
        if (threadIdx.x == 0) lse[(b * tq + i) * hq + h] = m + logf(s);
    }

    // probs = exp(score − lse) on visible positions, 0 elsewhere (backward's recomputation). One 256-thread
    // block per row, grid = hq·tq: no 64-bit division per element (that made a 1-D grid version 2× slower).
    extern "C" __global__ void attention_probabilities(const float* scores, T* probs, const float* lse, long long tq,
                                                       long long tk, long long hq, long long b, int causal) {
        i64 row = blockIdx.x, h = row / tq, i = row - h * tq;
        i64 visible = causal ? tk - tq + i + 1 : tk;
        float rowLse = lse[(b * tq + i) * hq + h];
        const float* sr = scores + row * tk;
        T* pr = probs + row * tk;
        for (i64 j = threadIdx.x; j < tk; j += blockDim.x) pr[j] = from_float<T>(j < visible ? __expf(sr[j] - rowLse) : 0.0f);
    }

    // In place: probs ← dS = P·(dP − δ)·scale on visible positions, with dP float32 and δ[(b·tq + i)·hq + h].
    // Masked positions are left alone (P is 0 there and dP was not computed). One block per row.
    extern "C" __global__ void attention_score_gradient(T* probs, const float* dprobs, const float* delta, long long tq,
                                                        long long tk, long long hq, long long b, int causal, float scale) {
        i64 row = blockIdx.x, h = row / tq, i = row - h * tq;
        i64 visible = causal ? tk - tq + i + 1 : tk;
        float rowDelta = delta[(b * tq + i) * hq + h];
        T* pr = probs + row * tk;
        const float* dr = dprobs + row * tk;
        for (i64 j = threadIdx.x; j < visible; j += blockDim.x) pr[j] = from_float<T>(to_float(pr[j]) * (dr[j] - rowDelta) * scale);
    }

    struct AttentionSizes { int batch, tq, tk, hq, hkv, causal; float scale; };

    // Stages rows [first, first + TILE) of one head of a [B·len, heads·D] tensor into shared memory.
    template <int D>
    __device__ __forceinline__ void stage(float (*tile)[D], const T* src, i64 b, int len, int heads, int head, int first) {
        for (int e = threadIdx.x; e < TILE * D; e += blockDim.x) {
            int r = e / D, c = e - r * D, j = first + r;
            tile[r][c] = j < len ? to_float(src[((i64)b * len + j) * heads * D + (i64)head * D + c]) : 0.0f;
        }
    }

    // o, lse for one query row per thread; grid (ceil(tq/ROWS), hq, batch), block ROWS.
    template <int D>
    __device__ void attention_forward(const T* q, const T* k, const T* v, T* o, float* lse, AttentionSizes s) {
        __shared__ float ks[TILE][D], vs[TILE][D];
        int b = blockIdx.z, h = blockIdx.y, kvh = h / (s.hq / s.hkv);
        int i = blockIdx.x * ROWS + threadIdx.x;
        bool active = i < s.tq;
        int last = s.causal ? s.tk - s.tq + i : s.tk - 1;  // last visible key
        int blockLast = s.causal ? min(s.tk - 1, s.tk - s.tq + (int)(blockIdx.x * ROWS + ROWS - 1)) : s.tk - 1;
        float qr[D], acc[D];
        i64 row = ((i64)b * s.tq + (active ? i : 0)) * s.hq * D + (i64)h * D;
        #pragma unroll
        for (int e = 0; e < D; ++e) { qr[e] = active ? to_float(q[row + e]) * s.scale : 0.0f; acc[e] = 0.0f; }
        float m = neg_inf(), l = 0.0f;
        for (int first = 0; first <= blockLast; first += TILE) {
            __syncthreads();
            stage<D>(ks, k, b, s.tk, s.hkv, kvh, first);
            stage<D>(vs, v, b, s.tk, s.hkv, kvh, first);
            __syncthreads();
            int count = min(TILE, last - first + 1);
            if (!active) count = 0;
            for (int jj = 0; jj < count; ++jj) {
                float score = 0.0f;
                #pragma unroll
                for (int e = 0; e < D; ++e) score += qr[e] * ks[jj][e];
                if (score > m) {  // a new maximum rescales what was summed so far
                    float correction = __expf(m - score);
                    l *= correction;
                    #pragma unroll
                    for (int e = 0; e < D; ++e) acc[e] *= correction;
                    m = score;
                }
                float p = __expf(score - m);
                l += p;
                #pragma unroll
                for (int e = 0; e < D; ++e) acc[e] += p * vs[jj][e];
            }
        }
        if (!active) return;
        float inv = 1.0f / l;
        #pragma unroll
        for (int e = 0; e < D; ++e) o[row + e] = from_float<T>(acc[e] * inv);
        lse[((i64)b * s.tq + i) * s.hq + h] = m + logf(l);
    }

    // delta[row, h] = Σ_e dO·O (FlashAttention-2's D); one thread per (row, head).
    extern "C" __global__ void attention_delta(const T* dout, const T* out, float* delta, long long rows, long long heads, long long d) {
        GRID_STRIDE(e, rows * heads) {
            const T* a = dout + e * d;
            const T* c = out + e * d;
            float s = 0.0f;
            for (i64 x = 0; x < d; ++x) s += to_float(a[x]) * to_float(c[x]);
            delta[e] = s;
        }
    }

    // dq for one query row per thread; grid (ceil(tq/ROWS), hq, batch), block ROWS.
    template <int D>
    __device__ void attention_backward_query(const T* q, const T* k, const T* v, const T* dout, const float* lse,
                                             const float* delta, T* dq, AttentionSizes s) {
        __shared__ float ks[TILE][D], vs[TILE][D];
        int b = blockIdx.z, h = blockIdx.y, kvh = h / (s.hq / s.hkv);
        int i = blockIdx.x * ROWS + threadIdx.x;
        bool active = i < s.tq;
        int last = s.causal ? s.tk - s.tq + i : s.tk - 1;
        int blockLast = s.causal ? min(s.tk - 1, s.tk - s.tq + (int)(blockIdx.x * ROWS + ROWS - 1)) : s.tk - 1;
        float qr[D], gr[D], acc[D];
        i64 row = ((i64)b * s.tq + (active ? i : 0)) * s.hq * D + (i64)h * D;
        #pragma unroll
        for (int e = 0; e < D; ++e) {
            qr[e] = active ? to_float(q[row + e]) * s.scale : 0.0f;
            gr[e] = active ? to_float(dout[row + e]) : 0.0f;
            acc[e] = 0.0f;
        }
        i64 stat = ((i64)b * s.tq + (active ? i : 0)) * s.hq + h;
        float rowLse = lse[stat], rowDelta = delta[stat];
        for (int first = 0; first <= blockLast; first += TILE) {
            __syncthreads();
            stage<D>(ks, k, b, s.tk, s.hkv, kvh, first);
            stage<D>(vs, v, b, s.tk, s.hkv, kvh, first);
            __syncthreads();
            int count = active ? min(TILE, last - first + 1) : 0;
            for (int jj = 0; jj < count; ++jj) {
                float score = 0.0f, dp = 0.0f;
                #pragma unroll
                for (int e = 0; e < D; ++e) { score += qr[e] * ks[jj][e]; dp += gr[e] * vs[jj][e]; }
                float ds = __expf(score - rowLse) * (dp - rowDelta) * s.scale;
                #pragma unroll
                for (int e = 0; e < D; ++e) acc[e] += ds * ks[jj][e];
            }
        }
        if (!active) return;
        #pragma unroll
        for (int e = 0; e < D; ++e) dq[row + e] = from_float<T>(acc[e]);
    }

    // dk, dv for one key row per thread, summed over the query heads sharing it;
    // grid (ceil(tk/ROWS), hkv, batch), block ROWS.
    template <int D>
    __device__ void attention_backward_key_value(const T* q, const T* k, const T* v, const T* dout, const float* lse,
                                                 const float* delta, T* dk, T* dv, AttentionSizes s) {
        __shared__ float qs[TILE][D], gs[TILE][D];
        __shared__ float ls[TILE], ds_[TILE];
        int b = blockIdx.z, kvh = blockIdx.y, group = s.hq / s.hkv;
        int j = blockIdx.x * ROWS + threadIdx.x;
        bool active = j < s.tk;
        int offset = s.tk - s.tq;  // query i sits at key position offset + i
        // The first query that sees key j (causal), and the first query any key of this block sees.
        int firstQuery = s.causal ? max(0, j - offset) : 0;
        int blockFirst = s.causal ? max(0, (int)(blockIdx.x * ROWS) - offset) : 0;
        float kr[D], vr[D], dka[D], dva[D];
        i64 row = ((i64)b * s.tk + (active ? j : 0)) * s.hkv * D + (i64)kvh * D;
        #pragma unroll
        for (int e = 0; e < D; ++e) {
            kr[e] = active ? to_float(k[row + e]) : 0.0f;
            vr[e] = active ? to_float(v[row + e]) : 0.0f;
            dka[e] = 0.0f;
            dva[e] = 0.0f;
        }
        for (int g = 0; g < group; ++g) {
            int h = kvh * group + g;
            for (int first = blockFirst - blockFirst % TILE; first < s.tq; first += TILE) {
                __syncthreads();
                stage<D>(qs, q, b, s.tq, s.hq, h, first);
                stage<D>(gs, dout, b, s.tq, s.hq, h, first);
                for (int r = threadIdx.x; r < TILE; r += blockDim.x) {
                    int qi = first + r;
                    ls[r] = qi < s.tq ? lse[((i64)b * s.tq + qi) * s.hq + h] : 0.0f;
                    ds_[r] = qi < s.tq ? delta[((i64)b * s.tq + qi) * s.hq + h] : 0.0f;
                }
                __syncthreads();
                if (!active) continue;
                int start = max(0, firstQuery - first), end = min(TILE, s.tq - first);
                for (int ii = start; ii < end; ++ii) {
                    float score = 0.0f, dp = 0.0f;
                    #pragma unroll
                    for (int e = 0; e < D; ++e) { score += qs[ii][e] * kr[e]; dp += gs[ii][e] * vr[e]; }
                    float p = __expf(score * s.scale - ls[ii]);
                    float dsc = p * (dp - ds_[ii]) * s.scale;
                    #pragma unroll
                    for (int e = 0; e < D; ++e) { dva[e] += p * gs[ii][e]; dka[e] += dsc * qs[ii][e]; }
                }
            }
        }
        if (!active) return;
        #pragma unroll
        for (int e = 0; e < D; ++e) { dk[row + e] = from_float<T>(dka[e]); dv[row + e] = from_float<T>(dva[e]); }
    }

    // Sizes travel as plain scalars (the launcher passes scalars only) and are bundled here.
    #define SIZES_PARAMS int batch, int tq, int tk, int hq, int hkv, int causal, float scale
    #define SIZES AttentionSizes{batch, tq, tk, hq, hkv, causal, scale}
    #define ATTENTION_KERNELS(D) \
    extern "C" __global__ void attention_forward_d##D( \
        const T* q, const T* k, const T* v, T* o, float* lse, SIZES_PARAMS) { attention_forward<D>(q, k, v, o, lse, SIZES); } \
    extern "C" __global__ void attention_backward_query_d##D(const T* q, const T* k, const T* v, \
        const T* dout, const float* lse, const float* delta, T* dq, SIZES_PARAMS) { \
        attention_backward_query<D>(q, k, v, dout, lse, delta, dq, SIZES); } \
    extern "C" __global__ void attention_backward_key_value_d##D(const T* q, const T* k, const T* v, \
        const T* dout, const float* lse, const float* delta, T* dk, T* dv, SIZES_PARAMS) { \
        attention_backward_key_value<D>(q, k, v, dout, lse, delta, dk, dv, SIZES); }

    ATTENTION_KERNELS(16)
    ATTENTION_KERNELS(32)
    ATTENTION_KERNELS(64)
    ATTENTION_KERNELS(80)
    ATTENTION_KERNELS(96)
    ATTENTION_KERNELS(128)

    #if defined(ELEMENT_BF16) || defined(ELEMENT_F16)
    // Fused forward on tensor cores (FlashAttention-2's forward): mma.sync m16n8k16, one warp per 16 query
    // rows, 4 warps per block (64 rows), K/V tiles of 64 keys in shared memory, online softmax in registers.
    // Writes O and the log-sum-exp; nothing [T, T] touches memory. Grid (ceil(tq/64), hq, batch), block 128.
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
    static __device__ __forceinline__ void mma16816(float* d, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." MMA_TYPE "." MMA_TYPE ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    }

    // Rows [first, first + 64) of head `head` of a [B·len, heads·D] 16-bit tensor into a shared tile with row
    // stride D + 8 halves (the padding spreads rows over banks); zeros past `len`.
    template <int D>
    __device__ __forceinline__ void stage64(unsigned short* tile, const unsigned short* src, int b, int len, int heads, int head, int first) {
        for (int e = threadIdx.x; e < 64 * (D / 2); e += blockDim.x) {
            int r = e / (D / 2), c = e - r * (D / 2), row = first + r;
            unsigned word = 0;
            if (row < len) word = ((const unsigned*)(src + ((i64)b * len + row) * heads * D + (i64)head * D))[c];
            ((unsigned*)(tile + r * (D + 8)))[c] = word;
        }
    }

    // The A-operand fragments (rows r0, r1 = r0 + 8; all of D) of one head of a [B·len, heads·D] tensor.
    template <int D>
    __device__ __forceinline__ void load_rows(unsigned (*frag)[4], const unsigned short* src, int b, int len, int heads, int head,
                                              int r0, int r1, int t) {
        const unsigned* p0 = (const unsigned*)(src + ((i64)b * len + min(r0, len - 1)) * heads * D + (i64)head * D);
        const unsigned* p1 = (const unsigned*)(src + ((i64)b * len + min(r1, len - 1)) * heads * D + (i64)head * D);
        #pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            frag[kk][0] = p0[kk * 8 + t]; frag[kk][1] = p1[kk * 8 + t];
            frag[kk][2] = p0[kk * 8 + 4 + t]; frag[kk][3] = p1[kk * 8 + 4 + t];
        }
    }

    // acc[16 × 64] = A[16 × D] (fragments) · tileᵀ, tile rows = the 64 columns of the result (K·Qᵀ, Q·Kᵀ, dO·Vᵀ…).
    template <int D>
    __device__ __forceinline__ void times_tile_transposed(float (*acc)[4], unsigned (*a)[4], const unsigned short* tile, int g, int t) {
        #pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
            acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
            #pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                const unsigned short* row = tile + (nt * 8 + g) * (D + 8) + kk * 16 + t * 2;
                mma16816(acc[nt], a[kk][0], a[kk][1], a[kk][2], a[kk][3], *(const unsigned*)row, *(const unsigned*)(row + 8));
            }
        }
    }

    // out[16 × D] += P[16 × 64] (accumulator layout, packed to 16-bit) · tile[64 × D].
    template <int D>
    __device__ __forceinline__ void accumulate_times_tile(float (*out)[4], float (*p)[4], const unsigned short* tile, int g, int t) {
        #pragma unroll
        for (int ks16 = 0; ks16 < 4; ++ks16) {
            unsigned a0 = pack2(p[2 * ks16][0], p[2 * ks16][1]), a1 = pack2(p[2 * ks16][2], p[2 * ks16][3]);
            unsigned a2 = pack2(p[2 * ks16 + 1][0], p[2 * ks16 + 1][1]), a3 = pack2(p[2 * ks16 + 1][2], p[2 * ks16 + 1][3]);
            int r = ks16 * 16 + t * 2;
            #pragma unroll
            for (int dt = 0; dt < D / 8; ++dt) {
                int col = dt * 8 + g;
                unsigned b0 = (unsigned)tile[r * (D + 8) + col] | ((unsigned)tile[(r + 1) * (D + 8) + col] << 16);
                unsigned b1 = (unsigned)tile[(r + 8) * (D + 8) + col] | ((unsigned)tile[(r + 9) * (D + 8) + col] << 16);
                mma16816(out[dt], a0, a1, a2, a3, b0, b1);
            }
        }
    }

    // Stores rows r0, r1 (accumulator layout, all of D) of one head of a [B·len, heads·D] 16-bit tensor.
    template <int D>
    __device__ __forceinline__ void store_rows(unsigned short* dst, float (*acc)[4], float scale0, float scale1, int b, int len,
                                               int heads, int head, int r0, int r1, int t) {
        #pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
            int col = dt * 8 + t * 2;
            if (r0 < len) *(unsigned*)(dst + ((i64)b * len + r0) * heads * D + (i64)head * D + col) = pack2(acc[dt][0] * scale0, acc[dt][1] * scale0);
            if (r1 < len) *(unsigned*)(dst + ((i64)b * len + r1) * heads * D + (i64)head * D + col) = pack2(acc[dt][2] * scale1, acc[dt][3] * scale1);
        }
    }

    template <int D>
    __device__ void attention_forward_mma(const T* q, const T* k, const T* v, T* o, float* lse, AttentionSizes s) {
        const int PAD = D + 8;  // row stride in halves: shifts banks between rows
        __shared__ __align__(16) unsigned short ks[64 * (D + 8)];
        __shared__ __align__(16) unsigned short vs[64 * (D + 8)];
        int b = blockIdx.z, h = blockIdx.y, kvh = h / (s.hq / s.hkv);
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
        int rowBase = blockIdx.x * 64 + warp * 16;
        int r0 = rowBase + g, r1 = rowBase + g + 8;             // this thread's two query rows
        const unsigned short* qh = (const unsigned short*)q;
        const unsigned short* kh = (const unsigned short*)k;
        const unsigned short* vh = (const unsigned short*)v;
        i64 qStride = (i64)s.hq * D, kvStride = (i64)s.hkv * D;
        // Q fragments for all of D, kept in registers.
        unsigned qa[D / 16][4];
        {
            int c0 = min(r0, s.tq - 1), c1 = min(r1, s.tq - 1);
            const unsigned* q0 = (const unsigned*)(qh + ((i64)b * s.tq + c0) * qStride + (i64)h * D);
            const unsigned* q1 = (const unsigned*)(qh + ((i64)b * s.tq + c1) * qStride + (i64)h * D);
            #pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                qa[kk][0] = q0[kk * 8 + t]; qa[kk][1] = q1[kk * 8 + t];
                qa[kk][2] = q0[kk * 8 + 4 + t]; qa[kk][3] = q1[kk * 8 + 4 + t];
            }
        }
        float acc[D / 8][4];
        #pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) acc[dt][0] = acc[dt][1] = acc[dt][2] = acc[dt][3] = 0.0f;
        float m0 = neg_inf(), m1 = neg_inf(), l0 = 0.0f, l1 = 0.0f;
        int offset = s.tk - s.tq;
        int blockLastKey = s.causal ? min(s.tk - 1, offset + (int)blockIdx.x * 64 + 63) : s.tk - 1;
        for (int first = 0; first <= blockLastKey; first += 64) {
            __syncthreads();
            stage64<D>(ks, kh, b, s.tk, s.hkv, kvh, first);
            stage64<D>(vs, vh, b, s.tk, s.hkv, kvh, first);
            __syncthreads();
            // S = Q·Kᵀ for 16 rows × 64 keys: 8 n-tiles of 8 keys.
            float sc[8][4];
            #pragma unroll
            for (int nt = 0; nt < 8; ++nt) {
                sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
                #pragma unroll
                for (int kk = 0; kk < D / 16; ++kk) {
                    const unsigned short* kr = ks + (nt * 8 + g) * PAD + kk * 16 + t * 2;
                    mma16816(sc[nt], qa[kk][0], qa[kk][1], qa[kk][2], qa[kk][3], *(const unsigned*)kr, *(const unsigned*)(kr + 8));
                }
            }
            // Scale, mask, and the online softmax for rows r0 (c0, c1) and r1 (c2, c3).
            float tileMax0 = neg_inf(), tileMax1 = neg_inf();
            #pragma unroll
            for (int nt = 0; nt < 8; ++nt) {
                #pragma unroll
                for (int e = 0; e < 4; ++e) {
                    int key = first + nt * 8 + t * 2 + (e & 1);
                    int row = e < 2 ? r0 : r1;
                    bool visible = key < s.tk && (!s.causal || key <= offset + row);
                    float x = visible ? sc[nt][e] * s.scale : neg_inf();
                    sc[nt][e] = x;
                    if (e < 2) tileMax0 = fmaxf(tileMax0, x); else tileMax1 = fmaxf(tileMax1, x);
                }
            }
            tileMax0 = fmaxf(tileMax0, __shfl_xor_sync(0xffffffffu, tileMax0, 1));
            tileMax0 = fmaxf(tileMax0, __shfl_xor_sync(0xffffffffu, tileMax0, 2));
            tileMax1 = fmaxf(tileMax1, __shfl_xor_sync(0xffffffffu, tileMax1, 1));
            tileMax1 = fmaxf(tileMax1, __shfl_xor_sync(0xffffffffu, tileMax1, 2));
            float new0 = fmaxf(m0, tileMax0), new1 = fmaxf(m1, tileMax1);
            // Rows past tq (or a first tile with nothing visible) keep −inf: make their factors 0, not NaN.
            float corr0 = new0 == neg_inf() ? 1.0f : __expf(m0 - new0), corr1 = new1 == neg_inf() ? 1.0f : __expf(m1 - new1);
            float base0 = new0 == neg_inf() ? 0.0f : new0, base1 = new1 == neg_inf() ? 0.0f : new1;
            m0 = new0; m1 = new1;
            float sum0 = 0.0f, sum1 = 0.0f;
            #pragma unroll
            for (int nt = 0; nt < 8; ++nt) {
                sc[nt][0] = __expf(sc[nt][0] - base0); sc[nt][1] = __expf(sc[nt][1] - base0);
                sc[nt][2] = __expf(sc[nt][2] - base1); sc[nt][3] = __expf(sc[nt][3] - base1);
                sum0 += sc[nt][0] + sc[nt][1];
                sum1 += sc[nt][2] + sc[nt][3];
            }
            l0 = l0 * corr0 + sum0;  // each thread sums its own columns; the quad is combined at the end
            l1 = l1 * corr1 + sum1;
            #pragma unroll
            for (int dt = 0; dt < D / 8; ++dt) { acc[dt][0] *= corr0; acc[dt][1] *= corr0; acc[dt][2] *= corr1; acc[dt][3] *= corr1; }
            // O += P·V: P's accumulator layout is already the A-operand layout of the next product.
            #pragma unroll
            for (int ks16 = 0; ks16 < 4; ++ks16) {
                unsigned a0 = pack2(sc[2 * ks16][0], sc[2 * ks16][1]), a1 = pack2(sc[2 * ks16][2], sc[2 * ks16][3]);
                unsigned a2 = pack2(sc[2 * ks16 + 1][0], sc[2 * ks16 + 1][1]), a3 = pack2(sc[2 * ks16 + 1][2], sc[2 * ks16 + 1][3]);
                int key = ks16 * 16 + t * 2;
                #pragma unroll
                for (int dt = 0; dt < D / 8; ++dt) {
                    int col = dt * 8 + g;
                    unsigned b0 = (unsigned)vs[key * PAD + col] | ((unsigned)vs[(key + 1) * PAD + col] << 16);
                    unsigned b1 = (unsigned)vs[(key + 8) * PAD + col] | ((unsigned)vs[(key + 9) * PAD + col] << 16);
                    mma16816(acc[dt], a0, a1, a2, a3, b0, b1);
                }
            }
        }
        l0 += __shfl_xor_sync(0xffffffffu, l0, 1); l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 1); l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
        unsigned short* oh = (unsigned short*)o;
        #pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
            int col = dt * 8 + t * 2;
            if (r0 < s.tq) *(unsigned*)(oh + ((i64)b * s.tq + r0) * qStride + (i64)h * D + col) = pack2(acc[dt][0] * inv0, acc[dt][1] * inv0);
            if (r1 < s.tq) *(unsigned*)(oh + ((i64)b * s.tq + r1) * qStride + (i64)h * D + col) = pack2(acc[dt][2] * inv1, acc[dt][3] * inv1);
        }
        if (t == 0) {
            if (r0 < s.tq) lse[((i64)b * s.tq + r0) * s.hq + h] = m0 + logf(l0);
            if (r1 < s.tq) lse[((i64)b * s.tq + r1) * s.hq + h] = m1 + logf(l1);
        }
    }


    // Fused backward, part 1 (key-major): each warp owns 16 keys of one KV head and walks the queries that see
    // them (every query head of its group): Sᵀ = K·Qᵀ, Pᵀ = exp(Sᵀ·scale − lse), dV += Pᵀ·dO, dPᵀ = V·dOᵀ,
    // dSᵀ = Pᵀ ⊙ (dPᵀ − δ)·scale, dK += dSᵀ·Q. Grid (ceil(tk/64), hkv, batch), block 128.
    template <int D>
    __device__ void attention_backward_kv_mma(const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* delta,
                                              T* dk, T* dv, AttentionSizes s) {
        __shared__ __align__(16) unsigned short qs[64 * (D + 8)];
        __shared__ __align__(16) unsigned short gs[64 * (D + 8)];
        __shared__ float ls[64], dls[64];
        int b = blockIdx.z, kvh = blockIdx.y, group = s.hq / s.hkv;
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
        int k0 = blockIdx.x * 64 + warp * 16 + g, k1 = k0 + 8;
        unsigned ka[D / 16][4], va[D / 16][4];
        load_rows<D>(ka, (const unsigned short*)k, b, s.tk, s.hkv, kvh, k0, k1, t);
        load_rows<D>(va, (const unsigned short*)v, b, s.tk, s.hkv, kvh, k0, k1, t);
        float dka[D / 8][4], dva[D / 8][4];
        #pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
            dka[dt][0] = dka[dt][1] = dka[dt][2] = dka[dt][3] = 0.0f;
            dva[dt][0] = dva[dt][1] = dva[dt][2] = dva[dt][3] = 0.0f;
        }
        int offset = s.tk - s.tq;
        int firstQuery = s.causal ? max(0, (int)blockIdx.x * 64 - offset) : 0;
        for (int gi = 0; gi < group; ++gi) {
            int h = kvh * group + gi;
            for (int first = firstQuery - firstQuery % 64; first < s.tq; first += 64) {
                __syncthreads();
                stage64<D>(qs, (const unsigned short*)q, b, s.tq, s.hq, h, first);
                stage64<D>(gs, (const unsigned short*)dout, b, s.tq, s.hq, h, first);
                for (int r = threadIdx.x; r < 64; r += blockDim.x) {
                    int qi = first + r;
                    ls[r] = qi < s.tq ? lse[((i64)b * s.tq + qi) * s.hq + h] : 0.0f;
                    dls[r] = qi < s.tq ? delta[((i64)b * s.tq + qi) * s.hq + h] : 0.0f;
                }
                __syncthreads();
                float st[8][4], dpt[8][4];
                times_tile_transposed<D>(st, ka, qs, g, t);   // Sᵀ: 16 keys × 64 queries
                times_tile_transposed<D>(dpt, va, gs, g, t);  // dPᵀ = V·dOᵀ
                #pragma unroll
                for (int nt = 0; nt < 8; ++nt) {
                    #pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        int c = nt * 8 + t * 2 + (e & 1), query = first + c, key = e < 2 ? k0 : k1;
                        bool visible = query < s.tq && key < s.tk && (!s.causal || key <= offset + query);
                        float p = visible ? __expf(st[nt][e] * s.scale - ls[c]) : 0.0f;
                        st[nt][e] = p;
                        dpt[nt][e] = p * (dpt[nt][e] - dls[c]) * s.scale;
                    }
                }
                accumulate_times_tile<D>(dva, st, gs, g, t);   // dV += Pᵀ·dO
                accumulate_times_tile<D>(dka, dpt, qs, g, t);  // dK += dSᵀ·Q
            }
        }
        store_rows<D>((unsigned short*)dk, dka, 1.0f, 1.0f, b, s.tk, s.hkv, kvh, k0, k1, t);
        store_rows<D>((unsigned short*)dv, dva, 1.0f, 1.0f, b, s.tk, s.hkv, kvh, k0, k1, t);
    }

    // Fused backward, part 2 (query-major): S = Q·Kᵀ, P = exp(S·scale − lse), dP = dO·Vᵀ,
    // dS = P ⊙ (dP − δ)·scale, dQ += dS·K. Grid (ceil(tq/64), hq, batch), block 128.
    template <int D>
    __device__ void attention_backward_q_mma(const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* delta,
                                             T* dq, AttentionSizes s) {
        __shared__ __align__(16) unsigned short ks[64 * (D + 8)];
        __shared__ __align__(16) unsigned short vs[64 * (D + 8)];
        int b = blockIdx.z, h = blockIdx.y, kvh = h / (s.hq / s.hkv);
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
        int r0 = blockIdx.x * 64 + warp * 16 + g, r1 = r0 + 8;
        unsigned qa[D / 16][4], ga[D / 16][4];
        load_rows<D>(qa, (const unsigned short*)q, b, s.tq, s.hq, h, r0, r1, t);
        load_rows<D>(ga, (const unsigned short*)dout, b, s.tq, s.hq, h, r0, r1, t);
        i64 stat0 = ((i64)b * s.tq + min(r0, s.tq - 1)) * s.hq + h, stat1 = ((i64)b * s.tq + min(r1, s.tq - 1)) * s.hq + h;
        float lse0 = lse[stat0], lse1 = lse[stat1], delta0 = delta[stat0], delta1 = delta[stat1];
        float dqa[D / 8][4];
        #pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) dqa[dt][0] = dqa[dt][1] = dqa[dt][2] = dqa[dt][3] = 0.0f;
        int offset = s.tk - s.tq;
        int blockLastKey = s.causal ? min(s.tk - 1, offset + (int)blockIdx.x * 64 + 63) : s.tk - 1;
        for (int first = 0; first <= blockLastKey; first += 64) {
            __syncthreads();
            stage64<D>(ks, (const unsigned short*)k, b, s.tk, s.hkv, kvh, first);
            stage64<D>(vs, (const unsigned short*)v, b, s.tk, s.hkv, kvh, first);
            __syncthreads();
            float sc[8][4], dp[8][4];
            times_tile_transposed<D>(sc, qa, ks, g, t);  // S = Q·Kᵀ
            times_tile_transposed<D>(dp, ga, vs, g, t);  // dP = dO·Vᵀ
            #pragma unroll
            for (int nt = 0; nt < 8; ++nt) {
                #pragma unroll
                for (int e = 0; e < 4; ++e) {
                    int key = first + nt * 8 + t * 2 + (e & 1), row = e < 2 ? r0 : r1;
                    bool visible = row < s.tq && key < s.tk && (!s.causal || key <= offset + row);
                    float p = visible ? __expf(sc[nt][e] * s.scale - (e < 2 ? lse0 : lse1)) : 0.0f;
                    dp[nt][e] = p * (dp[nt][e] - (e < 2 ? delta0 : delta1)) * s.scale;
                }
            }
            accumulate_times_tile<D>(dqa, dp, ks, g, t);  // dQ += dS·K
        }
        store_rows<D>((unsigned short*)dq, dqa, 1.0f, 1.0f, b, s.tq, s.hq, h, r0, r1, t);
    }

    #define FUSED_FORWARD(D) \
    extern "C" __global__ void attention_forward_mma_d##D( \
        const T* q, const T* k, const T* v, T* o, float* lse, SIZES_PARAMS) { attention_forward_mma<D>(q, k, v, o, lse, SIZES); }
    // The backward keeps K, V, dK, dV fragments in registers: instantiated where they fit (D = 64).
    #define FUSED_BACKWARD(D) \
    extern "C" __global__ void attention_backward_kv_mma_d##D(const T* q, const T* k, const T* v, const T* dout, \
        const float* lse, const float* delta, T* dk, T* dv, SIZES_PARAMS) { \
        attention_backward_kv_mma<D>(q, k, v, dout, lse, delta, dk, dv, SIZES); } \
    extern "C" __global__ void attention_backward_q_mma_d##D(const T* q, const T* k, const T* v, const T* dout, \
        const float* lse, const float* delta, T* dq, SIZES_PARAMS) { \
        attention_backward_q_mma<D>(q, k, v, dout, lse, delta, dq, SIZES); }
    FUSED_FORWARD(64)
    FUSED_FORWARD(128)
    FUSED_BACKWARD(64)
    #endif
    """#

    /// Head dimensions the attention kernels are instantiated for.
    static let attentionHeadDimensions: Set<Int> = [16, 32, 64, 80, 96, 128]
    /// Head dimensions of the fused tensor-core forward and backward (bf16 and fp16 only).
    static let fusedAttentionHeadDimensions: Set<Int> = [64, 128]
    static let fusedAttentionBackwardHeadDimensions: Set<Int> = [64]
}
