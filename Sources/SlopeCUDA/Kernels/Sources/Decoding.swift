extension KernelSources {
    /// Generation: attention of one new token per sequence over its KV-cache rows, all sequences in one launch, and
    /// greedy decoding's argmax.
    static let decoding = #"""
    // out [S, hq·d] = softmax(q·Kᵀ·scale)·V for each sequence s over its cached rows starts[s] … starts[s] + lengths[s] − 1
    // of keys / values [rows, hkv·d] (every one visible: the query is the newest position); q [S, hq·d], grouped-query
    // heads sharing key head h / (hq / hkv). Grid (S, hq), 128 threads: each warp takes every 4th key with an online
    // softmax in registers (lanes split d, at most 8 elements each: d ≤ 256), then the four warps are merged.
    #define DECODE_WARPS 4
    #define DECODE_ELEMENTS 8
    extern "C" __global__ void decode_attention(const T* q, const T* keys, const T* values, const int* starts, const int* lengths,
                                                T* out, long long hq, long long hkv, long long d, float scale) {
        __shared__ float warp_max_[DECODE_WARPS], warp_sum_[DECODE_WARPS];
        __shared__ float warp_acc[DECODE_WARPS][DECODE_ELEMENTS * 32];
        i64 s = blockIdx.x, h = blockIdx.y, kh = h / (hq / hkv);
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        const T* qr = q + (s * hq + h) * d;
        float qv[DECODE_ELEMENTS], acc[DECODE_ELEMENTS];
        #pragma unroll
        for (int e = 0; e < DECODE_ELEMENTS; ++e) {
            i64 c = lane + 32 * e;
            qv[e] = c < d ? to_float(qr[c]) * scale : 0.0f;
            acc[e] = 0.0f;
        }
        float m = neg_inf(), l = 0.0f;
        i64 first = starts[s], count = lengths[s], stride = hkv * d;
        for (i64 j = warp; j < count; j += DECODE_WARPS) {
            const T* kr = keys + (first + j) * stride + kh * d;
            float dot = 0.0f;
            #pragma unroll
            for (int e = 0; e < DECODE_ELEMENTS; ++e) {
                i64 c = lane + 32 * e;
                if (c < d) dot += qv[e] * to_float(kr[c]);
            }
            float x = warp_sum(dot);
            float next = fmaxf(m, x), correction = __expf(m - next), p = __expf(x - next);
            l = l * correction + p;
            const T* vr = values + (first + j) * stride + kh * d;
            #pragma unroll
            for (int e = 0; e < DECODE_ELEMENTS; ++e) {
                i64 c = lane + 32 * e;
                acc[e] = acc[e] * correction + (c < d ? p * to_float(vr[c]) : 0.0f);
            }
            m = next;
        }
        if (lane == 0) { warp_max_[warp] = m; warp_sum_[warp] = l; }
        #pragma unroll
        for (int e = 0; e < DECODE_ELEMENTS; ++e) warp_acc[warp][lane + 32 * e] = acc[e];
        __syncthreads();
        float total_max = neg_inf();
        for (int w = 0; w < DECODE_WARPS; ++w) total_max = fmaxf(total_max, warp_max_[w]);
        float total = 0.0f;
        for (int w = 0; w < DECODE_WARPS; ++w) total += warp_max_[w] == neg_inf() ? 0.0f : warp_sum_[w] * __expf(warp_max_[w] - total_max);
        T* o = out + (s * hq + h) * d;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) {
            float sum = 0.0f;
            for (int w = 0; w < DECODE_WARPS; ++w) {
                if (warp_max_[w] != neg_inf()) sum += warp_acc[w][c] * __expf(warp_max_[w] - total_max);
            }
            o[c] = from_float<T>(sum / total);
        }
    }

    // dst[to[r]] = src[from[r]] for r < n: rows of `width` elements, either index list null for the identity; 1-D grid
    // over n·width. What writes a decode step's new keys into each sequence's cache rows, and gathers rows, in one launch.
    extern "C" __global__ void move_rows(const T* src, T* dst, const int* from, const int* to, long long n, long long width) {
        GRID_STRIDE(e, n * width) {
            i64 r = e / width, c = e - r * width;
            i64 source = from ? (i64)from[r] : r, target = to ? (i64)to[r] : r;
            dst[target * width + c] = src[source * width + c];
        }
    }

    // out[r] = the column of row r's largest value, the first on ties (NaN never wins); x [rows, cols]; one block
    // of 256 threads per row (grid-stride over rows). What greedy decoding reads back instead of the logits.
    static __device__ __forceinline__ void argmax_take(float& best, int& index, float v, int i) {
        if (v > best || (v == best && i < index)) { best = v; index = i; }
    }
    extern "C" __global__ void argmax_rows(const T* x, int* out, long long rows, long long cols) {
        __shared__ float best_values[32];
        __shared__ int best_indices[32];
        for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
            const T* xr = x + row * cols;
            float best = neg_inf();
            int index = 0x7FFFFFFF;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) argmax_take(best, index, to_float(xr[c]), (int)c);
            for (int offset = 16; offset > 0; offset >>= 1) {
                float v = __shfl_xor_sync(0xffffffffu, best, offset);
                int i = __shfl_xor_sync(0xffffffffu, index, offset);
                argmax_take(best, index, v, i);
            }
            int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
            __syncthreads();
            if (lane == 0) { best_values[warp] = best; best_indices[warp] = index; }
            __syncthreads();
            if (warp == 0) {
                best = lane < (int)(blockDim.x >> 5) ? best_values[lane] : neg_inf();
                index = lane < (int)(blockDim.x >> 5) ? best_indices[lane] : 0x7FFFFFFF;
                for (int offset = 16; offset > 0; offset >>= 1) {
                    float v = __shfl_xor_sync(0xffffffffu, best, offset);
                    int i = __shfl_xor_sync(0xffffffffu, index, offset);
                    argmax_take(best, index, v, i);
                }
                // A row of NaNs has no winner: column 0, as the CPU backend gives.
                if (lane == 0) out[row] = index == 0x7FFFFFFF ? 0 : index;
            }
        }
    }
    """#
}
