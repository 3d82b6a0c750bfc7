extension KernelSources {
    /// Rotary embeddings and flash-style attention (forward and backward).
    ///
    /// Attention keeps no [T, T] matrix: each thread owns one query (or key) row in registers, K/V (or Q/dO)
    /// tiles of 32 rows are staged in shared memory as float, and the softmax is computed online. Kernels
    /// are instantiated per head dimension (16, 32, 64, 80, 96, 128) and exported as `<name>_d<D>`.
    static let attention = #"""
    #define TILE 32
    #define ROWS 64

    // (cos, sin) of p·base^(−2i/d) for positions p < positions and i < d/2, into table [positions, d/2]: the
    // angles in double so long positions stay exact, once per (d, base) rather than in every rope call.
    extern "C" __global__ void rope_table(float2* table, long long positions, long long d, float base) {
        i64 half = d / 2;
        GRID_STRIDE(e, positions * half) {
            i64 i = e % half, p = e / half;
            double angle = (double)p * pow((double)base, -2.0 * (double)i / (double)d);
            table[e] = float2{(float)cos(angle), (float)sin(angle)};
        }
    }

    // Rotate-half RoPE on x [rows, heads·d]; row r sits at position positions[r], or offset + r % seq when positions
    // is null, whose rotations are that row of `table` (rope_table); sign −1 rotates back. One thread per (row, head,
    // i < d/2).
    extern "C" __global__ void rope(const T* x, T* y, const float2* table, long long rows, long long heads, long long d,
                                    long long seq, long long offset, float sign, const int* positions) {
        i64 half = d / 2;
        GRID_STRIDE(e, rows * heads * half) {
            i64 i = e % half, h = (e / half) % heads, row = e / (half * heads);
            i64 position = positions ? (i64)positions[row] : offset + row % seq;
            float2 rotation = table[position * half + i];
            float c = rotation.x, s = sign * rotation.y;
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

    // Attention dropout (AttentionShape.dropout): probability (row, j) of batch element b is kept where
    // dropout_keeps((b·hq·tq + row)·tk + j, seed) — row = h·tq + i, so the index is ((b·hq + h)·tq + i)·tk + j, as on
    // the CPU — and scaled by kept_scale, 1 / (1 − probability); threshold 0 with kept_scale 1 means no dropout.
    static __device__ __forceinline__ float attention_dropout(float p, i64 row, i64 j, long long tq, long long tk, long long hq,
                                                              long long b, long long seed, int threshold, float kept_scale) {
        if (threshold == 0 && kept_scale == 1.0f) return p;
        return dropout_keeps((b * hq * tq + row) * tk + j, seed, threshold) ? p * kept_scale : 0.0f;
    }

    // probs = softmax of each visible score row (0 where masked), dropped as above; lse[(b·tq + i)·hq + h] = log Σ exp
    // (of the undropped row). Visible: up to the query itself when causal, and never past key_limit (the sequence's real
    // keys: padding is masked). One 256-thread block per row, grid = hq·tq.
    extern "C" __global__ void attention_softmax_rows(const float* scores, T* probs, float* lse, long long tq, long long tk,
                                                      long long hq, long long b, int causal, long long key_limit, long long seed,
                                                      int threshold, float kept_scale) {
        i64 row = blockIdx.x, h = row / tq, i = row - h * tq;
        i64 visible = min(causal ? tk - tq + i + 1 : tk, key_limit);
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
        for (i64 j = threadIdx.x; j < tk; j += blockDim.x) {
            const float p = j < visible ? __expf(sr[j] - m) * inv : 0.0f;
            pr[j] = from_float<T>(attention_dropout(p, row, j, tq, tk, hq, b, seed, threshold, kept_scale));
        }
        if (threadIdx.x == 0) lse[(b * tq + i) * hq + h] = m + logf(s);
    }

    // probs = exp(score − lse) on visible positions, 0 elsewhere (backward's recomputation); with dropout, dropped =
    // probs dropped as the forward pass dropped them (what dV is multiplied by). One 256-thread block per row, grid =
    // hq·tq: no 64-bit division per element (that made a 1-D grid version 2× slower).
    extern "C" __global__ void attention_probabilities(const float* scores, T* probs, const float* lse, long long tq,
                                                       long long tk, long long hq, long long b, int causal, long long key_limit,
                                                       T* dropped, long long seed, int threshold, float kept_scale) {
        i64 row = blockIdx.x, h = row / tq, i = row - h * tq;
        i64 visible = min(causal ? tk - tq + i + 1 : tk, key_limit);
        float rowLse = lse[(b * tq + i) * hq + h];
        const float* sr = scores + row * tk;
        T* pr = probs + row * tk;
        for (i64 j = threadIdx.x; j < tk; j += blockDim.x) {
            const float p = j < visible ? __expf(sr[j] - rowLse) : 0.0f;
            pr[j] = from_float<T>(p);
            if (dropped) dropped[row * tk + j] = from_float<T>(attention_dropout(p, row, j, tq, tk, hq, b, seed, threshold, kept_scale));
        }
    }

    // In place: probs ← dS = P·(Z·dP − δ)·scale on visible positions, with dP float32 (the gradient of the dropped
    // probabilities; Z the dropout factor, 1 without dropout) and δ[(b·tq + i)·hq + h]. Masked positions are left
    // alone (P is 0 there and dP was not computed). One block per row.
    extern "C" __global__ void attention_score_gradient(T* probs, const float* dprobs, const float* delta, long long tq,
                                                        long long tk, long long hq, long long b, int causal, float scale,
                                                        long long key_limit, long long seed, int threshold, float kept_scale) {
        i64 row = blockIdx.x, h = row / tq, i = row - h * tq;
        i64 visible = min(causal ? tk - tq + i + 1 : tk, key_limit);
        float rowDelta = delta[(b * tq + i) * hq + h];
        T* pr = probs + row * tk;
        const float* dr = dprobs + row * tk;
        for (i64 j = threadIdx.x; j < visible; j += blockDim.x) {
            const float dp = attention_dropout(dr[j], row, j, tq, tk, hq, b, seed, threshold, kept_scale);
            pr[j] = from_float<T>(to_float(pr[j]) * (dp - rowDelta) * scale);
        }
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
    """#

    /// Head dimensions the attention kernels are instantiated for.
    static let attentionHeadDimensions: Set<Int> = [16, 32, 64, 80, 96, 128]
}
