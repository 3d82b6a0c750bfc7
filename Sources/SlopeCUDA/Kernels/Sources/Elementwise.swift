extension KernelSources {
    /// Elementwise kernels: arithmetic, scaling, masking, fills, activations and float conversions.
    static let elementwise = #"""
    // out[i] = a[i] (op) b[i] for i < n; op 0 add, 1 subtract, 2 multiply; 1-D grid of 256-thread blocks.
    extern "C" __global__ void binary_op(const T* a, const T* b, T* out, long long n, int op) {
        map2(a, b, out, n, [=](float x, float y) { return op == 0 ? x + y : (op == 1 ? x - y : x * y); });
    }

    // out[i] = factor·x[i] for i < n (out may alias x); 1-D grid.
    extern "C" __global__ void scale(const T* x, T* out, long long n, float factor) {
        map1(x, out, n, [=](float v) { return v * factor; });
    }

    // y[i] += alpha·x[i] for i < n; 1-D grid.
    extern "C" __global__ void accumulate(const T* x, T* y, long long n, float alpha) {
        map2(y, x, y, n, [=](float yv, float xv) { return yv + alpha * xv; });
    }

    // out[i] = mask[i] != 0 ? x[i] : 0 for i < n; x, out [n] T, mask [n] uint8; 1-D grid.
    extern "C" __global__ void apply_mask(const T* x, const unsigned char* mask, T* out, long long n) {
        GRID_STRIDE(i, n) out[i] = mask[i] != 0 ? x[i] : from_float<T>(0.0f);
    }

    // Inverted dropout: out[i] = dropout_keeps(i) ? x[i]·scale : 0 (the prelude's hash, as DropoutMask, so the CPU
    // backend drops the same elements); 1-D grid. Whole 16-byte packs a thread where x and out are aligned (the hash
    // stays per element).
    extern "C" __global__ void dropout(const T* x, T* out, long long n, long long seed, int threshold, float scale) {
        i64 first = (i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (i64)gridDim.x * blockDim.x;
        i64 packs = aligned16(x) && aligned16(out) ? n / PACK : 0;
        for (i64 p = first; p < packs; p += stride) {
            Pack<T> v = ((const Pack<T>*)x)[p], r;
            #pragma unroll
            for (int j = 0; j < PACK; ++j) {
                r.v[j] = dropout_keeps(p * PACK + j, seed, threshold) ? from_float<T>(to_float(v.v[j]) * scale) : from_float<T>(0.0f);
            }
            ((Pack<T>*)out)[p] = r;
        }
        for (i64 i = packs * PACK + first; i < n; i += stride) {
            out[i] = dropout_keeps(i, seed, threshold) ? from_float<T>(to_float(x[i]) * scale) : from_float<T>(0.0f);
        }
    }

    // LAMB's step: x[i] -= rate·r·update[i], r = sqrt(ps/us) from the two one-element float32 sums of squares on the
    // device (1 when either is zero), so no norm is read back; 1-D grid.
    extern "C" __global__ void trust_ratio_step(T* x, const T* update, const float* ps, const float* us, long long n, float rate) {
        const float p = ps[0], u = us[0];
        const float scale = rate * ((p > 0.0f && u > 0.0f) ? sqrtf(p / u) : 1.0f);
        GRID_STRIDE(i, n) x[i] = from_float<T>(to_float(x[i]) - scale * to_float(update[i]));
    }

    // x[i] = value for i < n; 1-D grid.
    extern "C" __global__ void fill(T* x, long long n, float value) {
        T v = from_float<T>(value);
        GRID_STRIDE(i, n) x[i] = v;
    }

    // act(v) and act'(v); kind 0 GELU (tanh approximation), 1 ReLU, 2 SiLU, 3 tanh, 4 GELU with erf (exact).
    static __device__ __forceinline__ float activate(float v, int kind) {
        const float c = 0.7978845608028654f, k = 0.044715f;
        if (kind == 0) return 0.5f * v * (1.0f + tanhf(c * (v + k * v * v * v)));
        if (kind == 1) return (v > 0.0f || v != v) ? v : 0.0f;  // NaN propagates, like max(x, 0) on the CPU
        if (kind == 3) return tanhf(v);
        if (kind == 4) return 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
        return v * (1.0f / (1.0f + expf(-v)));                    // x·sigmoid(x), the CPU reference's rounding order
    }
    static __device__ __forceinline__ float activation_slope(float v, int kind) {
        const float c = 0.7978845608028654f, k = 0.044715f;
        if (kind == 0) {
            float t = tanhf(c * (v + k * v * v * v));
            return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * c * (1.0f + 3.0f * k * v * v);
        }
        if (kind == 1) return v > 0.0f ? 1.0f : 0.0f;
        if (kind == 3) { float t = tanhf(v); return 1.0f - t * t; }
        if (kind == 4) return 0.5f * (1.0f + erff(v * 0.7071067811865476f)) + v * expf(-0.5f * v * v) * 0.3989422804014327f;
        float s = 1.0f / (1.0f + expf(-v));
        return s * (1.0f + v * (1.0f - s));
    }

    // y[i] = act(x[i]) for i < n; 1-D grid.
    extern "C" __global__ void activation_forward(const T* x, T* y, long long n, int kind) {
        map1(x, y, n, [=](float v) { return activate(v, kind); });
    }

    // dx[i] = dy[i]·act'(x[i]) for i < n; 1-D grid.
    extern "C" __global__ void activation_backward(const T* x, const T* dy, T* dx, long long n, int kind) {
        map2(x, dy, dx, n, [=](float v, float g) { return kind == 1 ? (v > 0.0f ? g : 0.0f) : g * activation_slope(v, kind); });
    }

    // SwiGLU's hidden activation in one pass: h[i] = act(gate[i])·up[i] for i < n; 1-D grid.
    extern "C" __global__ void gated_activation_forward(const T* gate, const T* up, T* h, long long n, int kind) {
        map2(gate, up, h, n, [=](float g, float u) { return activate(g, kind) * u; });
    }

    // Its gradients in one pass: dgate[i] = act'(gate[i])·up[i]·dh[i], dup[i] = act(gate[i])·dh[i]. Packs of T
    // where every pointer is 16-byte aligned, then single elements; 1-D grid.
    extern "C" __global__ void gated_activation_backward(const T* gate, const T* up, const T* dh, T* dgate, T* dup, long long n, int kind) {
        i64 first = (i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (i64)gridDim.x * blockDim.x;
        i64 packs = aligned16(gate) && aligned16(up) && aligned16(dh) && aligned16(dgate) && aligned16(dup) ? n / PACK : 0;
        for (i64 p = first; p < packs; p += stride) {
            Pack<T> g = ((const Pack<T>*)gate)[p], u = ((const Pack<T>*)up)[p], d = ((const Pack<T>*)dh)[p], dg, du;
            #pragma unroll
            for (int j = 0; j < PACK; ++j) {
                float gv = to_float(g.v[j]), dv = to_float(d.v[j]);
                dg.v[j] = from_float<T>(activation_slope(gv, kind) * to_float(u.v[j]) * dv);
                du.v[j] = from_float<T>(activate(gv, kind) * dv);
            }
            ((Pack<T>*)dgate)[p] = dg;
            ((Pack<T>*)dup)[p] = du;
        }
        for (i64 i = packs * PACK + first; i < n; i += stride) {
            float gv = to_float(gate[i]), dv = to_float(dh[i]);
            dgate[i] = from_float<T>(activation_slope(gv, kind) * to_float(up[i]) * dv);
            dup[i] = from_float<T>(activate(gv, kind) * dv);
        }
    }

    // out[i] = (float)x[i] for i < n; x [n] T, out [n] float32; 1-D grid.
    extern "C" __global__ void convert_to_float(const T* x, float* out, long long n) {
        GRID_STRIDE(i, n) out[i] = to_float(x[i]);
    }

    // out[i] = (T)x[i] for i < n, rounded to nearest even; x [n] float32, out [n] T; 1-D grid.
    extern "C" __global__ void convert_from_float(const float* x, T* out, long long n) {
        GRID_STRIDE(i, n) out[i] = from_float<T>(x[i]);
    }

    // x[r, c] += v[c]: a bias added after a GEMM that has no bias epilogue; x [rows, cols], v [cols].
    // Grid (column threads, ceil(rows/ROWS_PER_BLOCK)): a thread owns one column, or one 16-byte pack of columns
    // when rows are whole packs, and walks strips of 16 rows, so it loads its bias once and every access is
    // coalesced. All 16 loads are issued before any store: interleaved, the compiler cannot prove rows apart
    // (cols might be 0), so each load waited for the previous store (a third of memory bandwidth).
    #define ROWS_PER_BLOCK 16
    template <typename V, int LANES>
    __device__ __forceinline__ void add_to_strips(V* x, const V* v, i64 rows, i64 width) {
        for (i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x; c < width; c += (i64)gridDim.x * blockDim.x) {
            V bias = v[c];
            for (i64 r0 = (i64)blockIdx.y * ROWS_PER_BLOCK; r0 < rows; r0 += (i64)gridDim.y * ROWS_PER_BLOCK) {
                int count = rows - r0 < ROWS_PER_BLOCK ? (int)(rows - r0) : ROWS_PER_BLOCK;
                V* strip = x + r0 * width + c;
                V values[ROWS_PER_BLOCK];
                #pragma unroll
                for (int i = 0; i < ROWS_PER_BLOCK; ++i) if (i < count) values[i] = strip[i * width];
                #pragma unroll
                for (int i = 0; i < ROWS_PER_BLOCK; ++i) {
                    if (i >= count) continue;
                    const T* a = (const T*)&values[i];
                    const T* b = (const T*)&bias;
                    V sum;
                    T* out = (T*)&sum;
                    #pragma unroll
                    for (int j = 0; j < LANES; ++j) out[j] = from_float<T>(to_float(a[j]) + to_float(b[j]));
                    strip[i * width] = sum;
                }
            }
        }
    }
    extern "C" __global__ void add_row_vector(T* x, const T* v, long long rows, long long cols) {
        if (cols % PACK == 0 && aligned16(x) && aligned16(v)) add_to_strips<Pack<T>, PACK>((Pack<T>*)x, (const Pack<T>*)v, rows, cols / PACK);
        else add_to_strips<T, 1>(x, v, rows, cols);
    }
    """#
}
