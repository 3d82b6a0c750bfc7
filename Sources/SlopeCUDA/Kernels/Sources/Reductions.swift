extension KernelSources {
    /// Reductions: per-block partials of sum / sum of squares / max |x|, their final combine, and column sums.
    static let reductions = #"""
    // partials[blockIdx.x] = reduction over the block's grid-stride share of x [n]; op 0 sum, 1 sum of
    // squares, 2 max |x| (NaN wins); grid G ≤ 1024 blocks × 256 threads.
    extern "C" __global__ void reduce_partials(const T* x, long long n, float* partials, int op) {
        if (op == 2) {
            float m = 0.0f;
            GRID_STRIDE(i, n) m = nan_max(m, fabsf(to_float(x[i])));
            m = block_max(m);
            if (threadIdx.x == 0) partials[blockIdx.x] = m;
        } else {
            // Double per-thread accumulation keeps long sums (norms of whole models) accurate.
            double s = 0.0;
            if (op == 1) {
                GRID_STRIDE(i, n) { double v = (double)to_float(x[i]); s += v * v; }
            } else {
                GRID_STRIDE(i, n) s += (double)to_float(x[i]);
            }
            s = block_sum_double(s);
            if (threadIdx.x == 0) partials[blockIdx.x] = (float)s;
        }
    }

    // out[0] = combination of partials [count]: op 0/1 sum, op 2 max (NaN wins); one block of 256 threads.
    extern "C" __global__ void reduce_final(const float* partials, int count, float* out, int op) {
        if (op == 2) {
            float m = 0.0f;  // partials of op 2 are magnitudes, never below 0
            for (int i = threadIdx.x; i < count; i += blockDim.x) m = nan_max(m, partials[i]);
            m = block_max(m);
            if (threadIdx.x == 0) out[0] = m;
        } else {
            double s = 0.0;
            for (int i = threadIdx.x; i < count; i += blockDim.x) s += (double)partials[i];
            s = block_sum_double(s);
            if (threadIdx.x == 0) out[0] = (float)s;
        }
    }
    """#
}
