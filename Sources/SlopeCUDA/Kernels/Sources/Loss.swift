extension KernelSources {
    /// Embedding lookup and its gradient, and softmax cross-entropy forward and backward.
    static let loss = #"""
    // out[i, c] = table[ids[i], c]; table [vocab, cols], ids [n] int32 (validated on the host), out [n, cols];
    // 1-D grid over n·cols.
    extern "C" __global__ void embedding_forward(const T* table, const int* ids, T* out, long long n, long long cols) {
        GRID_STRIDE(e, n * cols) {
            i64 i = e / cols, c = e - i * cols;
            out[e] = table[(i64)ids[i] * cols + c];
        }
    }

    // grad[ids[i], c] += dy[i, c]; dy [n, cols], ids [n], grad [vocab, cols]. One thread per column walks
    // i = 0..n−1 in order: no atomics, no races (a column belongs to one thread) and a fixed summation
    // order, so repeated ids accumulate deterministically. Grid ceil(cols/256) × 256 (grid-stride for safety).
    extern "C" __global__ void embedding_backward(const T* dy, const int* ids, T* grad, long long n, long long cols) {
        GRID_STRIDE(c, cols) {
            for (i64 i = 0; i < n; ++i) {
                i64 dst = (i64)ids[i] * cols + c;
                grad[dst] = from_float<T>(to_float(grad[dst]) + to_float(dy[i * cols + c]));
            }
        }
    }

    // probs [rows, classes] = softmax(logits [rows, classes]); row_loss [rows] float32 = logsumexp − x[target],
    // or 0 when targets[row] == ignore_index (NaN for a target outside [0, classes)); one 256-thread block
    // per row, grid = rows.
    extern "C" __global__ void cross_entropy_forward(const T* logits, const int* targets, T* probs, float* row_loss,
                                                     long long rows, long long classes, int ignore_index) {
        for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
            const T* xr = logits + row * classes;
            T* pr = probs + row * classes;
            float m = neg_inf();
            for (i64 c = threadIdx.x; c < classes; c += blockDim.x) m = nan_max(m, to_float(xr[c]));
            m = block_max(m);
            float s = 0.0f;
            for (i64 c = threadIdx.x; c < classes; c += blockDim.x) s += expf(to_float(xr[c]) - m);
            s = block_sum(s);
            for (i64 c = threadIdx.x; c < classes; c += blockDim.x) pr[c] = from_float<T>(expf(to_float(xr[c]) - m) / s);
            if (threadIdx.x == 0) {
                int t = targets[row];
                float loss;
                if (t == ignore_index) loss = 0.0f;
                else if (t < 0 || (i64)t >= classes) loss = quiet_nan();  // never read out of bounds
                else loss = (m + logf(s)) - to_float(xr[t]);  // from the logits, not the rounded probs
                row_loss[row] = loss;
            }
        }
    }

    // dlogits[r, c] = factor·(probs[r, c] − [c == targets[r]]), or 0 for the whole row when targets[r] ==
    // ignore_index; probs, dlogits [rows, classes]; 1-D grid over rows·classes.
    extern "C" __global__ void cross_entropy_backward(const T* probs, const int* targets, T* dlogits, long long rows,
                                                      long long classes, int ignore_index, float factor) {
        GRID_STRIDE(e, rows * classes) {
            i64 r = e / classes, c = e - r * classes;
            int t = targets[r];
            float g = 0.0f;
            if (t != ignore_index) g = factor * (to_float(probs[e]) - ((i64)t == c ? 1.0f : 0.0f));
            dlogits[e] = from_float<T>(g);
        }
    }
    """#
}
