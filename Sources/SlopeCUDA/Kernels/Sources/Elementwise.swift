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

    // x[i] = value for i < n; 1-D grid.
    extern "C" __global__ void fill(T* x, long long n, float value) {
        T v = from_float<T>(value);
        GRID_STRIDE(i, n) x[i] = v;
    }

    // y[i] = act(x[i]) for i < n; kind 0 GELU (tanh approximation), 1 ReLU, 2 SiLU; 1-D grid.
    extern "C" __global__ void activation_forward(const T* x, T* y, long long n, int kind) {
        map1(x, y, n, [=](float v) {
            const float c = 0.7978845608028654f, k = 0.044715f;
            if (kind == 0) return 0.5f * v * (1.0f + tanhf(c * (v + k * v * v * v)));
            if (kind == 1) return (v > 0.0f || v != v) ? v : 0.0f;  // NaN propagates, like max(x, 0) on the CPU
            return v * (1.0f / (1.0f + expf(-v)));                    // x·sigmoid(x), the CPU reference's rounding order
        });
    }

    // dx[i] = dy[i]·act'(x[i]) for i < n; same kinds as activation_forward; 1-D grid.
    extern "C" __global__ void activation_backward(const T* x, const T* dy, T* dx, long long n, int kind) {
        map2(x, dy, dx, n, [=](float v, float g) {
            const float c = 0.7978845608028654f, k = 0.044715f;
            if (kind == 0) {
                float t = tanhf(c * (v + k * v * v * v));
                return g * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * c * (1.0f + 3.0f * k * v * v));
            }
            if (kind == 1) return v > 0.0f ? g : 0.0f;
            float s = 1.0f / (1.0f + expf(-v));
            return g * (s * (1.0f + v * (1.0f - s)));
        });
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
    // Grid (ceil(cols/256), ceil(rows/ROWS_PER_BLOCK)): a thread owns one column of 16-row strips, so it
    // loads its bias once and updates 16 rows with coalesced accesses (no 64-bit division per element).
    // All 16 loads are issued before any store: with loads and stores interleaved, the compiler cannot prove
    // rows apart (cols might be 0), so each load waited for the previous store and the kernel ran at a third
    // of memory bandwidth.
    #define ROWS_PER_BLOCK 16
    extern "C" __global__ void add_row_vector(T* x, const T* v, long long rows, long long cols) {
        long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (c >= cols) return;
        float bias = to_float(v[c]);
        for (long long r0 = (long long)blockIdx.y * ROWS_PER_BLOCK; r0 < rows; r0 += (long long)gridDim.y * ROWS_PER_BLOCK) {
            int count = rows - r0 < ROWS_PER_BLOCK ? (int)(rows - r0) : ROWS_PER_BLOCK;
            T* strip = x + r0 * cols + c;
            float values[ROWS_PER_BLOCK];
            #pragma unroll
            for (int i = 0; i < ROWS_PER_BLOCK; ++i) if (i < count) values[i] = to_float(strip[i * cols]);
            #pragma unroll
            for (int i = 0; i < ROWS_PER_BLOCK; ++i) if (i < count) strip[i * cols] = from_float<T>(values[i] + bias);
        }
    }
    """#
}
