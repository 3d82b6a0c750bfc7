extension KernelSources {
    /// Row-wise softmax and layer normalization, forward and backward.
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

    // y = (x − mean)·rstd·w + b per row; x, y [rows, cols]; w, b [cols] (NULL means 1 / 0); mean, rstd
    // [rows] float32 saved for backward; one 256-thread block per row, grid = rows.
    extern "C" __global__ void layernorm_forward(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd,
                                                 long long rows, long long cols, float eps) {
        for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
            const T* xr = x + row * cols;
            T* yr = y + row * cols;
            float s = 0.0f;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += to_float(xr[c]);
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

    // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·w, x̂ = (x − mean)·rstd; dy, x, dx [rows, cols];
    // w [cols] (NULL means 1); mean, rstd [rows] float32; one 256-thread block per row, grid = rows.
    extern "C" __global__ void layernorm_backward_input(const T* dy, const T* x, const T* w, const float* mean,
                                                        const float* rstd, T* dx, long long rows, long long cols) {
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
                dr[c] = from_float<T>(rs * (g - mg - xh * mgx));
            }
        }
    }

    // dw[c] = Σ_r dy[r,c]·x̂[r,c], db[c] = Σ_r dy[r,c] (overwritten; either may be NULL); dy, x [rows, cols];
    // mean, rstd [rows] float32; one thread per column, grid ceil(cols/256) × 256 (grid-stride for safety).
    extern "C" __global__ void layernorm_backward_params(const T* dy, const T* x, const float* mean, const float* rstd,
                                                         T* dw, T* db, long long rows, long long cols) {
        GRID_STRIDE(c, cols) {
            float sw = 0.0f, sb = 0.0f;
            for (i64 r = 0; r < rows; ++r) {
                float g = to_float(dy[r * cols + c]);
                float xh = (to_float(x[r * cols + c]) - mean[r]) * rstd[r];
                sw += g * xh;
                sb += g;
            }
            if (dw) dw[c] = from_float<T>(sw);
            if (db) db[c] = from_float<T>(sb);
        }
    }
    """#
}
