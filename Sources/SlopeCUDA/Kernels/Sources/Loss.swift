extension KernelSources {
    /// Embedding lookup and its gradient, and softmax cross-entropy forward and backward.
    static let loss = #"""
    // out[i, c] = table[ids[i], c]; table [vocab, cols], ids [n] int32 (validated on the host), out [n, cols];
    // 1-D grid over n·cols.
    // An id outside the table (which the host checks wherever it can) gives a row of zeros, never a stray read.
    extern "C" __global__ void embedding_forward(const T* table, const int* ids, T* out, long long n, long long cols, long long rows) {
        GRID_STRIDE(e, n * cols) {
            i64 i = e / cols, c = e - i * cols;
            i64 id = ids[i];
            out[e] = id >= 0 && id < rows ? table[id * cols + c] : from_float<T>(0.0f);
        }
    }

    // grad[ids[s], c] += Σ_k dy[positions[k], c] over k in [starts[s], starts[s + 1]) (tokens grouped by id on the
    // host, in token order): one block row per distinct id, so no two threads touch one element and the sum's
    // order is fixed; each column is added in float and rounded once. Grid (segments ≤ 65535, ceil(cols/256)).
    extern "C" __global__ void embedding_backward(const T* dy, const int* ids, const int* starts, const int* positions, T* grad,
                                                  long long segments, long long cols) {
        for (i64 s = blockIdx.x; s < segments; s += gridDim.x) {
            T* row = grad + (i64)ids[s] * cols;
            for (i64 c = (i64)blockIdx.y * blockDim.x + threadIdx.x; c < cols; c += (i64)gridDim.y * blockDim.x) {
                float acc = to_float(row[c]);
                for (int k = starts[s]; k < starts[s + 1]; ++k) acc += to_float(dy[(i64)positions[k] * cols + c]);
                row[c] = from_float<T>(acc);
            }
        }
    }

    // Softmax cross-entropy, one 256-thread block per row (grid = rows): one pass for the row's maximum and
    // sum of exponentials together (an online softmax: the sum is rescaled when the maximum grows), one pass
    // writing probs [rows, classes] = softmax(logits). row_loss [rows] float32 = logsumexp − x[target], or 0 when
    // targets[row] == ignore_index (NaN for a target outside [0, classes)). Rows of whole 16-byte packs are read
    // a pack at a time.
    static __device__ __forceinline__ void online_add(float& m, float& s, float x) {
        if (x > m) { s = s * expf(m - x) + 1.0f; m = x; } else { s += expf(x - m); }
    }
    extern "C" __global__ void cross_entropy_forward(const T* logits, const int* targets, T* probs, float* row_loss,
                                                     long long rows, long long classes, int ignore_index) {
        bool packed = classes % PACK == 0 && aligned16(logits) && aligned16(probs);
        i64 packs = packed ? classes / PACK : 0;
        for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
            const T* xr = logits + row * classes;
            T* pr = probs + row * classes;
            float m = neg_inf(), s = 0.0f;
            for (i64 p = threadIdx.x; p < packs; p += blockDim.x) {
                Pack<T> x = ((const Pack<T>*)xr)[p];
                #pragma unroll
                for (int j = 0; j < PACK; ++j) online_add(m, s, to_float(x.v[j]));
            }
            for (i64 c = packs * PACK + threadIdx.x; c < classes; c += blockDim.x) online_add(m, s, to_float(xr[c]));
            float rowMax = block_max(m);
            s = block_sum(m == neg_inf() ? 0.0f : s * expf(m - rowMax));
            float inverse = 1.0f / s;
            for (i64 p = threadIdx.x; p < packs; p += blockDim.x) {
                Pack<T> x = ((const Pack<T>*)xr)[p], y;
                #pragma unroll
                for (int j = 0; j < PACK; ++j) y.v[j] = from_float<T>(expf(to_float(x.v[j]) - rowMax) * inverse);
                ((Pack<T>*)pr)[p] = y;
            }
            for (i64 c = packs * PACK + threadIdx.x; c < classes; c += blockDim.x) pr[c] = from_float<T>(expf(to_float(xr[c]) - rowMax) * inverse);
            if (threadIdx.x == 0) {
                int t = targets[row];
                float loss;
                if (t == ignore_index) loss = 0.0f;
                else if (t < 0 || (i64)t >= classes) loss = quiet_nan();  // never read out of bounds
                else loss = (rowMax + logf(s)) - to_float(xr[t]);  // from the logits, not the rounded probs
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
