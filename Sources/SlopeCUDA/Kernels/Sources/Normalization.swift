extension KernelSources {
    /// Row-wise softmax, LayerNorm and RMSNorm, forward and backward.
    static let normalization = #"""
    // y [rows, cols] = softmax of each row of x [rows, cols]; one 256-thread block per row, grid = rows.
    // The row loop (stride gridDim.x) is uniform across the block, so the block reductions stay safe.
    extern "C" __global__ void softmax_forward(const T* x, T* y, long long rows, long long cols) {
        for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
            const T* xr = x + row * cols;
            T* yr = y + row * cols;
            float m = neg_inf();
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) m = nan_max(m, to_float(xr[c]));
            m = block_max(m);  // subtracting the row max keeps expf from overflowing
            float s = 0.0f;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += expf(to_float(xr[c]) - m);
            s = block_sum(s);
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = from_float<T>(expf(to_float(xr[c]) - m) / s);
        }
    }

    // dx = y·(dy − Σ_c dy·y) per row; y, dy, dx [rows, cols]; one 256-thread block per row, grid = rows.
    extern "C" __global__ void softmax_backward(const T* y, const T* dy, T* dx, long long rows, long long cols) {
        for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
            const T* yr = y + row * cols;
            const T* gr = dy + row * cols;
            T* dr = dx + row * cols;
            float dot = 0.0f;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) dot += to_float(gr[c]) * to_float(yr[c]);
            dot = block_sum(dot);
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
                float p = to_float(yr[c]);
                dr[c] = from_float<T>(p * (to_float(gr[c]) - dot));
            }
        }
    }

    // Dropout of a residual before it is added (a post-norm block's branch): element `index` kept where dropout_keeps
    // keeps it, times scale and rounded to T, as the dropout kernel would have written it; threshold 0 with scale 1
    // drops nothing. The same applied to an input gradient in backward.
    struct BranchDropout { long long seed; int threshold; float scale; };
    #define NO_BRANCH_DROPOUT BranchDropout{0, 0, 1.0f}
    static __device__ __forceinline__ float dropped_branch(T r, i64 index, BranchDropout d) {
        if (d.threshold == 0 && d.scale == 1.0f) return to_float(r);
        return dropout_keeps(index, d.seed, d.threshold) ? to_float(from_float<T>(to_float(r) * d.scale)) : 0.0f;
    }

    // The row sum of x, or, with a residual r, of v = x + r (r dropped as d says) rounded to T and stored in h (the
    // residual add fused into the norm); returns the row the norm then reads: x's, or h's. Each thread reads back only
    // the columns it wrote.
    __device__ __forceinline__ const T* residual_row(const T* x, const T* r, T* h, i64 row, i64 cols, float& s, BranchDropout d) {
        const T* xr = x + row * cols;
        s = 0.0f;
        if (!r) {
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += to_float(xr[c]);
            return xr;
        }
        const T* rr = r + row * cols;
        T* hr = h + row * cols;
        for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
            T v = from_float<T>(to_float(xr[c]) + dropped_branch(rr[c], row * cols + c, d));
            hr[c] = v;
            s += to_float(v);
        }
        return hr;
    }

    // Packed rows: each thread keeps packs p = threadIdx.x + k·blockDim.x (k < NORM_PACKS) of its row in registers,
    // so the row is read from memory once however many passes the norm makes over it, 16 bytes at a time. Rows of
    // whole packs, at most NORM_PACKS per thread (8192 bf16 columns for 256 threads), with every pointer 16-byte
    // aligned (slope's tensors are; NULL counts as aligned) take this path; other rows the element loops.
    #define NORM_PACKS 4
    static __device__ __forceinline__ bool norm_packed(i64 cols, const void* a, const void* b, const void* c, const void* d,
                                                       const void* e, const void* f) {
        return cols % PACK == 0 && cols / PACK <= (i64)blockDim.x * NORM_PACKS && aligned16(a) && aligned16(b) && aligned16(c)
            && aligned16(d) && aligned16(e) && aligned16(f);
    }
    #define FOR_PACKS(k, p, packs) _Pragma("unroll") for (int k = 0; k < NORM_PACKS; ++k) \
        for (i64 p = threadIdx.x + (i64)k * blockDim.x; p < (packs); p = (packs))

    // Row `row` of x, or of v = x + r (r dropped as d says) rounded to T and stored in h, into registers; returns this
    // thread's sum of it.
    static __device__ __forceinline__ float load_row_packs(Pack<T> (&v)[NORM_PACKS], const T* x, const T* r, T* h, i64 row, i64 packs,
                                                           BranchDropout d) {
        float s = 0.0f;
        FOR_PACKS(k, p, packs) {
            Pack<T> a = ((const Pack<T>*)x)[row * packs + p];
            if (r) {
                Pack<T> b = ((const Pack<T>*)r)[row * packs + p];
                #pragma unroll
                for (int j = 0; j < PACK; ++j) a.v[j] = from_float<T>(to_float(a.v[j]) + dropped_branch(b.v[j], (row * packs + p) * PACK + j, d));
                ((Pack<T>*)h)[row * packs + p] = a;
            }
            #pragma unroll
            for (int j = 0; j < PACK; ++j) s += to_float(a.v[j]);
            v[k] = a;
        }
        return s;
    }

    // Pack p of a per-column vector (w or b), or `fallback` everywhere when it is NULL.
    static __device__ __forceinline__ Pack<T> column_pack(const T* w, i64 p, float fallback) {
        if (w) return ((const Pack<T>*)w)[p];
        Pack<T> one;
        #pragma unroll
        for (int j = 0; j < PACK; ++j) one.v[j] = from_float<T>(fallback);
        return one;
    }

    // y = (v − mean)·rstd·w + b per row with v = x, or v = h = x + r when r is given (NULL: no residual), r dropped
    // first as (drop_seed, drop_threshold, drop_scale) say (BranchDropout); x, r, h, y [rows, cols]; w, b [cols]
    // (NULL means 1 / 0); mean, rstd [rows] float32 saved for backward; one 256-thread block per row, grid = rows.
    extern "C" __global__ void layernorm_forward(const T* x, const T* r, T* h, const T* w, const T* b, T* y, float* mean,
                                                 float* rstd, long long rows, long long cols, float eps, long long drop_seed,
                                                 int drop_threshold, float drop_scale) {
        const BranchDropout drop = BranchDropout{drop_seed, drop_threshold, drop_scale};
        if (norm_packed(cols, x, r, h, w, b, y)) {
            const i64 packs = cols / PACK;
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                Pack<T> v[NORM_PACKS];
                float mu = block_sum(load_row_packs(v, x, r, h, row, packs, drop)) / (float)cols;
                float q = 0.0f;
                FOR_PACKS(k, p, packs) {
                    #pragma unroll
                    for (int j = 0; j < PACK; ++j) { float d = to_float(v[k].v[j]) - mu; q += d * d; }
                }
                float rs = 1.0f / sqrtf(block_sum(q) / (float)cols + eps);
                if (threadIdx.x == 0) {
                    if (mean) mean[row] = mu;
                    if (rstd) rstd[row] = rs;
                }
                FOR_PACKS(k, p, packs) {
                    Pack<T> wv = column_pack(w, p, 1.0f), bv = column_pack(b, p, 0.0f), out;
                    #pragma unroll
                    for (int j = 0; j < PACK; ++j) out.v[j] = from_float<T>((to_float(v[k].v[j]) - mu) * rs * to_float(wv.v[j]) + to_float(bv.v[j]));
                    ((Pack<T>*)y)[row * packs + p] = out;
                }
            }
            return;
        }
        for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
            float s;
            const T* xr = residual_row(x, r, h, row, cols, s, drop);
            T* yr = y + row * cols;
            float mu = block_sum(s) / (float)cols;
            // Two passes (centre, then square) avoid the cancellation of E[x²] − E[x]².
            float q = 0.0f;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) { float d = to_float(xr[c]) - mu; q += d * d; }
            float var = block_sum(q) / (float)cols;  // biased variance, as PyTorch's layer_norm
            float rs = 1.0f / sqrtf(var + eps);      // not rsqrtf: that is approximate
            if (threadIdx.x == 0) {
                if (mean) mean[row] = mu;
                if (rstd) rstd[row] = rs;
            }
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
                float v = (to_float(xr[c]) - mu) * rs;
                if (w) v *= to_float(w[c]);
                if (b) v += to_float(b[c]);
                yr[c] = from_float<T>(v);
            }
        }
    }

    // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) (+ dres) with g = dy·w, x̂ = (x − mean)·rstd; dy, x, dx, dres
    // [rows, cols]; w [cols] (NULL means 1); dres: the residual connection's gradient (NULL: none); mean, rstd
    // [rows] float32; with `dropped` (NULL: none), dx dropped as (drop_seed, …) say written there too (the gradient
    // of a residual the forward pass dropped). One 256-thread block per row, grid = rows.
    extern "C" __global__ void layernorm_backward_input(const T* dy, const T* x, const T* w, const float* mean,
                                                        const float* rstd, const T* dres, T* dx, long long rows, long long cols,
                                                        T* dropped, long long drop_seed, int drop_threshold, float drop_scale) {
        const BranchDropout drop = BranchDropout{drop_seed, drop_threshold, drop_scale};
        if (norm_packed(cols, dy, x, w, dres, dx, dropped)) {
            const i64 packs = cols / PACK;
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                float mu = mean[row], rs = rstd[row], sg = 0.0f, sgx = 0.0f;
                Pack<T> gv[NORM_PACKS], xv[NORM_PACKS];
                FOR_PACKS(k, p, packs) {
                    gv[k] = ((const Pack<T>*)dy)[row * packs + p];
                    xv[k] = ((const Pack<T>*)x)[row * packs + p];
                    Pack<T> wv = column_pack(w, p, 1.0f);
                    #pragma unroll
                    for (int j = 0; j < PACK; ++j) {
                        float g = to_float(gv[k].v[j]) * to_float(wv.v[j]);
                        sg += g;
                        sgx += g * ((to_float(xv[k].v[j]) - mu) * rs);
                    }
                }
                float mg = block_sum(sg) / (float)cols;
                float mgx = block_sum(sgx) / (float)cols;
                FOR_PACKS(k, p, packs) {
                    Pack<T> wv = column_pack(w, p, 1.0f), out;
                    Pack<T> rv = column_pack(0, 0, 0.0f);
                    if (dres) rv = ((const Pack<T>*)dres)[row * packs + p];
                    #pragma unroll
                    for (int j = 0; j < PACK; ++j) {
                        float g = to_float(gv[k].v[j]) * to_float(wv.v[j]);
                        float xh = (to_float(xv[k].v[j]) - mu) * rs;
                        out.v[j] = from_float<T>(rs * (g - mg - xh * mgx) + to_float(rv.v[j]));
                    }
                    ((Pack<T>*)dx)[row * packs + p] = out;
                    if (dropped) {
                        Pack<T> q;
                        #pragma unroll
                        for (int j = 0; j < PACK; ++j) q.v[j] = from_float<T>(dropped_branch(out.v[j], (row * packs + p) * PACK + j, drop));
                        ((Pack<T>*)dropped)[row * packs + p] = q;
                    }
                }
            }
            return;
        }
        for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
            const T* gr = dy + row * cols;
            const T* xr = x + row * cols;
            T* dr = dx + row * cols;
            float mu = mean[row], rs = rstd[row];
            float sg = 0.0f, sgx = 0.0f;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
                float g = to_float(gr[c]);
                if (w) g *= to_float(w[c]);
                float xh = (to_float(xr[c]) - mu) * rs;
                sg += g;
                sgx += g * xh;
            }
            float mg = block_sum(sg) / (float)cols;
            float mgx = block_sum(sgx) / (float)cols;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
                float g = to_float(gr[c]);
                if (w) g *= to_float(w[c]);
                float xh = (to_float(xr[c]) - mu) * rs;
                float d = rs * (g - mg - xh * mgx);
                if (dres) d += to_float(dres[row * cols + c]);
                dr[c] = from_float<T>(d);
                if (dropped) dropped[row * cols + c] = from_float<T>(dropped_branch(dr[c], row * cols + c, drop));
            }
        }
    }

    // Partial column sums over chunks of rows of dy·x̂ (→ dw) and dy (→ db), float32 partial[chunk, c].
    // Grid (ceil(cols/32), chunks), block (32, 8): every SM gets work even for 2048 columns.
    extern "C" __global__ void layernorm_backward_params_partial(const T* dy, const T* x, const float* mean, const float* rstd,
                                                                 float* partial_w, float* partial_b, long long rows,
                                                                 long long cols, long long chunk_rows) {
        __shared__ float sw_[8][33], sb_[8][33];
        i64 c = (i64)blockIdx.x * 32 + threadIdx.x, first = (i64)blockIdx.y * chunk_rows;
        i64 last = min(rows, first + chunk_rows);
        float sw = 0.0f, sb = 0.0f;
        if (c < cols)
            for (i64 r = first + threadIdx.y; r < last; r += 8) {
                float g = to_float(dy[r * cols + c]);
                sw += g * (to_float(x[r * cols + c]) - mean[r]) * rstd[r];
                sb += g;
            }
        sw_[threadIdx.y][threadIdx.x] = sw;
        sb_[threadIdx.y][threadIdx.x] = sb;
        __syncthreads();
        if (threadIdx.y == 0 && c < cols) {
            float tw = 0.0f, tb = 0.0f;
            for (int y = 0; y < 8; ++y) { tw += sw_[y][threadIdx.x]; tb += sb_[y][threadIdx.x]; }
            partial_w[(i64)blockIdx.y * cols + c] = tw;
            partial_b[(i64)blockIdx.y * cols + c] = tb;
        }
    }

    // y = v·rrms·w, rrms = 1/sqrt(mean(v²) + eps) saved per row (float32), v = x or h = x + r as for LayerNorm;
    // one 256-thread block per row.
    extern "C" __global__ void rmsnorm_forward(const T* x, const T* r, T* h, const T* w, T* y, float* rrms, long long rows,
                                               long long cols, float eps) {
        if (norm_packed(cols, x, r, h, w, y, 0)) {
            const i64 packs = cols / PACK;
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                Pack<T> v[NORM_PACKS];
                load_row_packs(v, x, r, h, row, packs, NO_BRANCH_DROPOUT);
                float q = 0.0f;
                FOR_PACKS(k, p, packs) {
                    #pragma unroll
                    for (int j = 0; j < PACK; ++j) { float e = to_float(v[k].v[j]); q += e * e; }
                }
                float rs = 1.0f / sqrtf(block_sum(q) / (float)cols + eps);
                if (threadIdx.x == 0) rrms[row] = rs;
                FOR_PACKS(k, p, packs) {
                    Pack<T> wv = ((const Pack<T>*)w)[p], out;
                    #pragma unroll
                    for (int j = 0; j < PACK; ++j) out.v[j] = from_float<T>(to_float(v[k].v[j]) * rs * to_float(wv.v[j]));
                    ((Pack<T>*)y)[row * packs + p] = out;
                }
            }
            return;
        }
        for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
            float unused;
            const T* xr = residual_row(x, r, h, row, cols, unused, NO_BRANCH_DROPOUT);
            float q = 0.0f;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) { float v = to_float(xr[c]); q += v * v; }
            float rs = 1.0f / sqrtf(block_sum(q) / (float)cols + eps);
            if (threadIdx.x == 0) rrms[row] = rs;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) y[row * cols + c] = from_float<T>(to_float(xr[c]) * rs * to_float(w[c]));
        }
    }

    // dx = rrms·(g − x̂·mean(g·x̂)) (+ dres), g = dy·w, x̂ = x·rrms; dres NULL when there is no residual
    // gradient to add; one 256-thread block per row.
    extern "C" __global__ void rmsnorm_backward_input(const T* dy, const T* x, const T* w, const float* rrms, const T* dres,
                                                      T* dx, long long rows, long long cols) {
        if (norm_packed(cols, dy, x, w, dres, dx, 0)) {
            const i64 packs = cols / PACK;
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                float rs = rrms[row], s = 0.0f;
                Pack<T> gv[NORM_PACKS], xv[NORM_PACKS];
                FOR_PACKS(k, p, packs) {
                    gv[k] = ((const Pack<T>*)dy)[row * packs + p];
                    xv[k] = ((const Pack<T>*)x)[row * packs + p];
                    Pack<T> wv = ((const Pack<T>*)w)[p];
                    #pragma unroll
                    for (int j = 0; j < PACK; ++j) s += to_float(gv[k].v[j]) * to_float(wv.v[j]) * to_float(xv[k].v[j]) * rs;
                }
                float mean = block_sum(s) / (float)cols;
                FOR_PACKS(k, p, packs) {
                    Pack<T> wv = ((const Pack<T>*)w)[p], out;
                    Pack<T> rv = column_pack(0, 0, 0.0f);
                    if (dres) rv = ((const Pack<T>*)dres)[row * packs + p];
                    #pragma unroll
                    for (int j = 0; j < PACK; ++j) {
                        float xh = to_float(xv[k].v[j]) * rs;
                        out.v[j] = from_float<T>(rs * (to_float(gv[k].v[j]) * to_float(wv.v[j]) - xh * mean) + to_float(rv.v[j]));
                    }
                    ((Pack<T>*)dx)[row * packs + p] = out;
                }
            }
            return;
        }
        for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
            float rs = rrms[row], s = 0.0f;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x)
                s += to_float(dy[row * cols + c]) * to_float(w[c]) * to_float(x[row * cols + c]) * rs;
            float mean = block_sum(s) / (float)cols;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
                float xh = to_float(x[row * cols + c]) * rs;
                float d = rs * (to_float(dy[row * cols + c]) * to_float(w[c]) - xh * mean);
                if (dres) d += to_float(dres[row * cols + c]);
                dx[row * cols + c] = from_float<T>(d);
            }
        }
    }

    // Partial column sums of dy·x·rrms over chunks of rows: partial[chunk, c] (float32). Grid
    // (ceil(cols/32), chunks), block (32, 8); column_sum_partials then adds the chunks.
    extern "C" __global__ void rmsnorm_backward_weight_partial(const T* dy, const T* x, const float* rrms, float* partial,
                                                               long long rows, long long cols, long long chunk_rows) {
        __shared__ float sums[8][33];
        i64 c = (i64)blockIdx.x * 32 + threadIdx.x, first = (i64)blockIdx.y * chunk_rows;
        i64 last = min(rows, first + chunk_rows);
        float s = 0.0f;
        if (c < cols)
            for (i64 r = first + threadIdx.y; r < last; r += 8) s += to_float(dy[r * cols + c]) * to_float(x[r * cols + c]) * rrms[r];
        sums[threadIdx.y][threadIdx.x] = s;
        __syncthreads();
        if (threadIdx.y == 0 && c < cols) {
            float total = 0.0f;
            for (int y = 0; y < 8; ++y) total += sums[y][threadIdx.x];
            partial[(i64)blockIdx.y * cols + c] = total;
        }
    }

    """#
}
