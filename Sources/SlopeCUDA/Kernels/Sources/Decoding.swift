extension KernelSources {
    /// Generation: attention of one new token per sequence over its KV-cache rows, all sequences in one launch, and
    /// greedy decoding's argmax.
    static let decoding = #"""
    // out [S, hq·d] = softmax(q·Kᵀ·scale)·V for each sequence s over its cached rows starts[s] … starts[s] + lengths[s] − 1
    // of keys / values [rows, hkv·d] (every one visible: the query is the newest position); q [S, hq·d], grouped-query
    // heads sharing key head h / (hq / hkv). Grid (S, hq, splits), 256 threads. Block z takes keys [z·chunk, (z+1)·chunk)
    // of its sequence (split-K, "flash decoding": a few sequences' heads alone would leave most SMs idle); each warp
    // takes DECODE_KEYS consecutive keys at a time (their rows loaded together, so the loads' latencies overlap), every
    // DECODE_WARPS·DECODE_KEYS-th group, with an online softmax in registers (lanes split d, at most 8 elements each:
    // d ≤ 256); then the warps are merged. With `partial` null (one split) the block writes the output; otherwise its
    // running max, sum and unnormalised accumulator, [S, hq, splits, 2 + d] float, for decode_attention_combine.
    #define DECODE_WARPS 8
    #define DECODE_KEYS 4
    #define DECODE_ELEMENTS 8
    // An online softmax's running sum and accumulator scaled by exp(old max − new max).
    template <int N> static __device__ __forceinline__ void decode_rescale(float& l, float* acc, float correction) {
        l *= correction;
        #pragma unroll
        for (int e = 0; e < N; ++e) acc[e] *= correction;
    }

    // The warps' softmaxes (max, sum, unnormalised accumulator in shared memory) merged, and the block's result written:
    // the output row, or with `partial` its max, sum and accumulator for decode_attention_combine.
    static __device__ void decode_attention_finish(const float* warp_max_, const float* warp_sum_, float (*warp_acc)[DECODE_ELEMENTS * 32],
                                                   T* out, float* partial, i64 s, i64 h, i64 hq, i64 d) {
        float total_max = neg_inf();
        for (int w = 0; w < DECODE_WARPS; ++w) total_max = fmaxf(total_max, warp_max_[w]);
        float total = 0.0f;
        for (int w = 0; w < DECODE_WARPS; ++w) total += warp_max_[w] == neg_inf() ? 0.0f : warp_sum_[w] * __expf(warp_max_[w] - total_max);
        float* p = partial ? partial + ((s * hq + h) * gridDim.z + blockIdx.z) * (d + 2) : nullptr;
        if (p && threadIdx.x == 0) { p[0] = total_max; p[1] = total; }
        T* o = out + (s * hq + h) * d;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) {
            float sum = 0.0f;
            for (int w = 0; w < DECODE_WARPS; ++w) {
                if (warp_max_[w] != neg_inf()) sum += warp_acc[w][c] * __expf(warp_max_[w] - total_max);
            }
            if (p) p[2 + c] = sum;
            else o[c] = from_float<T>(sum / total);
        }
    }

    extern "C" __global__ void decode_attention(const T* q, const T* keys, const T* values, const int* starts, const int* lengths,
                                                T* out, float* partial, long long hq, long long hkv, long long d, float scale,
                                                long long chunk) {
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
        i64 first = starts[s], stride = hkv * d;
        i64 begin = (i64)blockIdx.z * chunk, end = min(begin + chunk, (i64)lengths[s]);
        for (i64 base = begin + warp * DECODE_KEYS; base < end; base += DECODE_WARPS * DECODE_KEYS) {
            float dots[DECODE_KEYS];
            #pragma unroll
            for (int k = 0; k < DECODE_KEYS; ++k) {
                float dot = 0.0f;
                if (base + k < end) {
                    const T* kr = keys + (first + base + k) * stride + kh * d;
                    #pragma unroll
                    for (int e = 0; e < DECODE_ELEMENTS; ++e) {
                        i64 c = lane + 32 * e;
                        if (c < d) dot += qv[e] * to_float(kr[c]);
                    }
                }
                dots[k] = dot;
            }
            float next = m;
            #pragma unroll
            for (int k = 0; k < DECODE_KEYS; ++k) {
                dots[k] = warp_sum(dots[k]);
                if (base + k < end) next = fmaxf(next, dots[k]);
            }
            decode_rescale<DECODE_ELEMENTS>(l, acc, __expf(m - next));
            #pragma unroll
            for (int k = 0; k < DECODE_KEYS; ++k) {
                if (base + k < end) {
                    float p = __expf(dots[k] - next);
                    l += p;
                    const T* vr = values + (first + base + k) * stride + kh * d;
                    #pragma unroll
                    for (int e = 0; e < DECODE_ELEMENTS; ++e) {
                        i64 c = lane + 32 * e;
                        if (c < d) acc[e] += p * to_float(vr[c]);
                    }
                }
            }
            m = next;
        }
        if (lane == 0) { warp_max_[warp] = m; warp_sum_[warp] = l; }
        #pragma unroll
        for (int e = 0; e < DECODE_ELEMENTS; ++e) warp_acc[warp][lane + 32 * e] = acc[e];
        __syncthreads();
        decode_attention_finish(warp_max_, warp_sum_, warp_acc, out, partial, s, h, hq, d);
    }

    // decode_attention with each key row read 16 bytes a lane: a group of L = d / PACK lanes (a power of two) holds one
    // key, so a warp takes 32 / L keys a load, and each lane loads its key's value chunk in the same breath (neither
    // waits for the softmax); DECODE_WIDE_UNROLL such loads in flight. Each group keeps its own online softmax, merged
    // across the warp's groups by shuffles, then across warps as decode_attention does. Same grid, block, arguments
    // and outputs. (`decode_attention` reads 2 bytes a lane and its values only after the softmax: at d = 64 a step's
    // attention ran ~12x below the memory bandwidth on an H100.)
    #define DECODE_WIDE_UNROLL 2
    extern "C" __global__ void decode_attention_wide(const T* q, const T* keys, const T* values, const int* starts, const int* lengths,
                                                     T* out, float* partial, long long hq, long long hkv, long long d, float scale,
                                                     long long chunk) {
        __shared__ float warp_max_[DECODE_WARPS], warp_sum_[DECODE_WARPS];
        __shared__ float warp_acc[DECODE_WARPS][DECODE_ELEMENTS * 32];
        const int L = (int)(d / PACK), groups = 32 / L;
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane / L, c = lane % L;
        const i64 s = blockIdx.x, h = blockIdx.y, kh = h / (hq / hkv);
        Pack<T> qp = *(const Pack<T>*)(q + (s * hq + h) * d + c * PACK);
        float qv[PACK], acc[PACK];
        #pragma unroll
        for (int e = 0; e < PACK; ++e) { qv[e] = to_float(qp.v[e]) * scale; acc[e] = 0.0f; }
        float m = neg_inf(), l = 0.0f;
        const i64 first = starts[s], stride = hkv * d;
        const i64 begin = (i64)blockIdx.z * chunk, end = min(begin + chunk, (i64)lengths[s]);
        for (i64 base = begin; base < end; base += (i64)DECODE_WARPS * DECODE_WIDE_UNROLL * groups) {
            Pack<T> kp[DECODE_WIDE_UNROLL], vp[DECODE_WIDE_UNROLL];
            bool valid[DECODE_WIDE_UNROLL];
            #pragma unroll
            for (int u = 0; u < DECODE_WIDE_UNROLL; ++u) {
                i64 k = base + ((i64)warp * DECODE_WIDE_UNROLL + u) * groups + g;
                valid[u] = k < end;
                i64 offset = (first + (valid[u] ? k : begin)) * stride + kh * d + c * PACK;
                kp[u] = *(const Pack<T>*)(keys + offset);
                vp[u] = *(const Pack<T>*)(values + offset);
            }
            float dots[DECODE_WIDE_UNROLL], next = m;
            #pragma unroll
            for (int u = 0; u < DECODE_WIDE_UNROLL; ++u) {
                float dot = 0.0f;
                #pragma unroll
                for (int e = 0; e < PACK; ++e) dot += qv[e] * to_float(kp[u].v[e]);
                for (int offset = L / 2; offset >= 1; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
                dots[u] = valid[u] ? dot : neg_inf();
                next = fmaxf(next, dots[u]);
            }
            if (next == neg_inf()) continue;  // (this group had no key this round and none before)
            decode_rescale<PACK>(l, acc, __expf(m - next));
            #pragma unroll
            for (int u = 0; u < DECODE_WIDE_UNROLL; ++u) {
                if (valid[u]) {
                    float p = __expf(dots[u] - next);
                    l += p;
                    #pragma unroll
                    for (int e = 0; e < PACK; ++e) acc[e] += p * to_float(vp[u].v[e]);
                }
            }
            m = next;
        }
        // The warp's groups merged: lanes of one chunk index sit L apart.
        for (int offset = L; offset < 32; offset *= 2) {
            float om = __shfl_xor_sync(0xffffffffu, m, offset), ol = __shfl_xor_sync(0xffffffffu, l, offset);
            float merged = fmaxf(m, om);
            float a = m == neg_inf() ? 0.0f : __expf(m - merged), b = om == neg_inf() ? 0.0f : __expf(om - merged);
            l = l * a + ol * b;
            #pragma unroll
            for (int e = 0; e < PACK; ++e) acc[e] = acc[e] * a + __shfl_xor_sync(0xffffffffu, acc[e], offset) * b;
            m = merged;
        }
        if (lane == 0) { warp_max_[warp] = m; warp_sum_[warp] = l; }
        if (lane < L) {
            #pragma unroll
            for (int e = 0; e < PACK; ++e) warp_acc[warp][c * PACK + e] = acc[e];
        }
        __syncthreads();
        decode_attention_finish(warp_max_, warp_sum_, warp_acc, out, partial, s, h, hq, d);
    }

    // out [S, hq·d] from decode_attention's per-split partials [S, hq, splits, 2 + d] (max, sum, accumulator): the
    // splits' softmaxes rescaled to the overall max and summed. Grid (S, hq); a split that held no keys (max −∞) adds
    // nothing.
    extern "C" __global__ void decode_attention_combine(const float* partial, T* out, long long splits, long long hq, long long d) {
        i64 s = blockIdx.x, h = blockIdx.y;
        const float* p = partial + (s * hq + h) * splits * (d + 2);
        float m = neg_inf();
        for (i64 k = 0; k < splits; ++k) m = fmaxf(m, p[k * (d + 2)]);
        float total = 0.0f;
        for (i64 k = 0; k < splits; ++k) {
            float mk = p[k * (d + 2)];
            if (mk != neg_inf()) total += p[k * (d + 2) + 1] * __expf(mk - m);
        }
        T* o = out + (s * hq + h) * d;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) {
            float sum = 0.0f;
            for (i64 k = 0; k < splits; ++k) {
                float mk = p[k * (d + 2)];
                if (mk != neg_inf()) sum += p[k * (d + 2) + 2 + c] * __expf(mk - m);
            }
            o[c] = from_float<T>(sum / total);
        }
    }

    // dst[to[r]] = src[from[r]] for r < n: rows of `width` elements, either index list null for the identity; 1-D grid
    // over n·width. What writes a decode step's new keys into each sequence's cache rows, and gathers rows, in one launch
    // (and an encoder's unpadded rows, 8 times a layer). Rows of whole 16-byte packs move a pack per thread: one index
    // division per 16 bytes instead of per element (a BERT-large profile had the element-wise form at ~0.5 TB/s).
    extern "C" __global__ void move_rows(const T* src, T* dst, const int* from, const int* to, long long n, long long width) {
        if ((width * (i64)sizeof(T)) % 16 == 0 && aligned16(src) && aligned16(dst)) {
            const i64 packs = width * (i64)sizeof(T) / 16;
            GRID_STRIDE(e, n * packs) {
                i64 r = e / packs, c = e - r * packs;
                i64 source = from ? (i64)from[r] : r, target = to ? (i64)to[r] : r;
                ((uint4*)(dst + target * width))[c] = ((const uint4*)(src + source * width))[c];
            }
            return;
        }
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

    // out[r] = a draw from softmax(x[r] / temperature[r]) by inverse transform with uniform[r] in [0, 1): the first
    // column whose running sum of exp((x − max) / t) exceeds uniform·total, columns in order (NaN logits weigh 0);
    // temperature 0 is greedy (argmax_rows' rule). One block of 256 threads per row: each thread sums a contiguous
    // chunk, thread 0 finds the chunk that holds the threshold, and that chunk's thread walks it.
    extern "C" __global__ void sample_rows(const T* x, int* out, const float* temperature, const float* uniform, long long rows,
                                           long long cols) {
        __shared__ float chunk_sums[256];
        __shared__ float warp_best[32];
        __shared__ int warp_index[32];
        __shared__ int chosen_chunk;
        __shared__ float chosen_rest;
        for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
            const T* xr = x + row * cols;
            float t = temperature[row];
            i64 chunk = (cols + blockDim.x - 1) / blockDim.x, first = threadIdx.x * chunk, last = min(first + chunk, cols);
            float m = neg_inf();
            int index = 0x7FFFFFFF;
            for (i64 c = first; c < last; ++c) argmax_take(m, index, to_float(xr[c]), (int)c);
            if (t == 0.0f) {  // greedy: the block's argmax, ties to the first column
                for (int offset = 16; offset > 0; offset >>= 1) {
                    float v = __shfl_xor_sync(0xffffffffu, m, offset);
                    int i = __shfl_xor_sync(0xffffffffu, index, offset);
                    argmax_take(m, index, v, i);
                }
                __syncthreads();
                if ((threadIdx.x & 31) == 0) { warp_best[threadIdx.x >> 5] = m; warp_index[threadIdx.x >> 5] = index; }
                __syncthreads();
                if (threadIdx.x == 0) {
                    float best = neg_inf();
                    int at = 0x7FFFFFFF;
                    for (int w = 0; w < (int)(blockDim.x >> 5); ++w) argmax_take(best, at, warp_best[w], warp_index[w]);
                    out[row] = at == 0x7FFFFFFF ? 0 : at;
                }
                __syncthreads();
                continue;
            }
            float top = block_max(m) / t;  // the row's largest logit over t (NaNs never count: argmax_take skips them)
            if (top == neg_inf()) {  // nothing to draw from: column 0, as greedy gives
                if (threadIdx.x == 0) out[row] = 0;
                __syncthreads();
                continue;
            }
            float sum = 0.0f;
            for (i64 c = first; c < last; ++c) {
                float v = to_float(xr[c]);
                if (v == v) sum += __expf(v / t - top);
            }
            chunk_sums[threadIdx.x] = sum;
            __syncthreads();
            if (threadIdx.x == 0) {
                float total = 0.0f;
                for (int k = 0; k < (int)blockDim.x; ++k) total += chunk_sums[k];
                float threshold = uniform[row] * total;
                int k = 0;
                for (; k < (int)blockDim.x - 1; ++k) {
                    if (threshold < chunk_sums[k]) break;
                    threshold -= chunk_sums[k];
                }
                chosen_chunk = k;
                chosen_rest = threshold;
            }
            __syncthreads();
            if ((int)threadIdx.x == chosen_chunk) {
                float threshold = chosen_rest;
                int pick = -1;
                for (i64 c = first; c < last; ++c) {
                    float v = to_float(xr[c]);
                    if (v != v) continue;
                    float p = __expf(v / t - top);
                    if (p > 0.0f) pick = (int)c;  // the last column with weight, should rounding leave the threshold unmet
                    threshold -= p;
                    if (threshold < 0.0f) break;
                }
                out[row] = pick < 0 ? (int)first : pick;
            }
            __syncthreads();
        }
    }

    // Top-k / top-p truncation for sampling on the device: out = x with the columns outside each row's kept set at −∞.
    // The row's columns ranked by value (highest first, ties by column), the first keep of them: keep = top_k[row]
    // (0: all) or, where top_p[row] < 1, the fewest whose weights exp((x − max) / t) reach top_p of the row's total. NaNs
    // are never kept; rows at temperature 0 are copied. One block of 256 threads per row. Values are compared through an
    // order key (a float's bits made monotone, NaN lowest); the kept set is "key > K, and the first j columns with key K",
    // K found bit by bit (32 passes: the largest K with enough columns, or weight, at or above it).
    static __device__ __forceinline__ unsigned truncate_key(float v) {
        if (v != v) return 0u;
        unsigned u = __float_as_uint(v);
        return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    }
    static __device__ __forceinline__ float truncate_value(unsigned key) {
        return __uint_as_float((key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key);
    }
    // The largest key K whose columns at or above it count (weights: their weights sum) to at least `goal`.
    static __device__ unsigned truncate_threshold(const T* xr, i64 cols, float goal, bool weighted, float top, float t) {
        unsigned k = 0u;
        for (int bit = 31; bit >= 0; --bit) {
            unsigned candidate = k | (1u << bit);
            float total = 0.0f;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
                float v = to_float(xr[c]);
                if (truncate_key(v) >= candidate) total += weighted ? __expf((v - top) / t) : 1.0f;
            }
            if (block_sum(total) >= goal) k = candidate;
        }
        return k;
    }
    extern "C" __global__ void truncate_rows(const T* x, T* out, const float* temperature, const int* top_k, const float* top_p,
                                             long long rows, long long cols) {
        __shared__ int tie_offsets[256];
        for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
            const T* xr = x + row * cols;
            T* orow = out + row * cols;
            float t = temperature[row];
            if (t == 0.0f) {
                for (i64 c = threadIdx.x; c < cols; c += blockDim.x) orow[c] = xr[c];
                continue;
            }
            float top = neg_inf(), valid = 0.0f;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
                float v = to_float(xr[c]);
                if (v == v) { top = fmaxf(top, v); valid += 1.0f; }
            }
            top = block_max(top);
            float count = block_sum(valid);
            float keep = top_k[row] > 0 ? fminf((float)top_k[row], count) : count;
            if (top_p[row] < 1.0f && top > neg_inf() && keep > 0.0f) {
                float weight = 0.0f;
                for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
                    float v = to_float(xr[c]);
                    if (v == v) weight += __expf((v - top) / t);
                }
                float goal = top_p[row] * block_sum(weight);
                unsigned kp = truncate_threshold(xr, cols, goal, true, top, t);
                float above = 0.0f, above_weight = 0.0f;
                for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
                    float v = to_float(xr[c]);
                    if (truncate_key(v) > kp) { above += 1.0f; above_weight += __expf((v - top) / t); }
                }
                above = block_sum(above);
                above_weight = block_sum(above_weight);
                float tie_weight = __expf((truncate_value(kp) - top) / t);
                float share = tie_weight > 0.0f ? (goal - above_weight) / tie_weight : 1.0f;
                float needed = (float)(int)share < share ? (float)(int)share + 1.0f : (float)(int)share;  // ceil
                keep = fminf(keep, above + fmaxf(needed, 1.0f));
            }
            // The kept set: every column above K, and the first (keep − above) columns at K.
            unsigned k = keep > 0.0f ? truncate_threshold(xr, cols, keep, false, top, t) : 0xFFFFFFFFu;
            float above = 0.0f;
            i64 chunk = (cols + blockDim.x - 1) / blockDim.x, first = threadIdx.x * chunk, last = min(first + chunk, cols);
            int ties = 0;
            for (i64 c = threadIdx.x; c < cols; c += blockDim.x) if (truncate_key(to_float(xr[c])) > k) above += 1.0f;
            for (i64 c = first; c < last; ++c) if (truncate_key(to_float(xr[c])) == k) ties += 1;
            above = block_sum(above);
            int allowed = (int)(keep - above);
            tie_offsets[threadIdx.x] = ties;
            __syncthreads();
            if (threadIdx.x == 0) {
                int running = 0;
                for (int i = 0; i < (int)blockDim.x; ++i) { int n = tie_offsets[i]; tie_offsets[i] = running; running += n; }
            }
            __syncthreads();
            int rank = tie_offsets[threadIdx.x];
            for (i64 c = first; c < last; ++c) {
                float v = to_float(xr[c]);
                unsigned key = truncate_key(v);
                bool kept = key > k || (key == k && key != 0u && rank++ < allowed);
                orow[c] = kept ? xr[c] : from_float<T>(neg_inf());
            }
            __syncthreads();
        }
    }
    """#
}
