extension KernelSources {
    /// Tiled matrix transpose.
    static let layout = #"""
    // y [cols, rows] = x [rows, cols]ᵀ; block (32, 8), grid (ceil(cols/32), ceil(rows/32)). A 32×32 tile is
    // staged in shared memory so both the read and the write are coalesced; the 33rd column pads away
    // bank conflicts on the column-wise read.
    extern "C" __global__ void transpose(const T* x, T* y, long long rows, long long cols) {
        __shared__ T tile[32][33];
        i64 c = (i64)blockIdx.x * 32 + threadIdx.x;
        for (int i = threadIdx.y; i < 32; i += blockDim.y) {
            i64 r = (i64)blockIdx.y * 32 + i;
            if (r < rows && c < cols) tile[i][threadIdx.x] = x[r * cols + c];
        }
        __syncthreads();
        i64 r = (i64)blockIdx.y * 32 + threadIdx.x;
        for (int i = threadIdx.y; i < 32; i += blockDim.y) {
            i64 cc = (i64)blockIdx.x * 32 + i;
            if (r < rows && cc < cols) y[cc * rows + r] = tile[threadIdx.x][i];
        }
    }

    // a, b, c [rows, wa], [rows, wb], [rows, wc] = columns first … first + wa + wb + wc of x [rows, cols], left to right
    // (a part of width 0 may be null); a part whose bit is set in `scattered` goes to row rows[r] of its tensor instead
    // of row r (a decode step's new keys and values into the KV cache). A stacked q/k/v projection's output taken apart
    // in one launch. Blocks grid-stride over rows, threads over a row's 16-byte chunks where every offset and width is
    // a whole number of them (no division per element: a prefill moves 4096 × 6144 of them a layer), else elements.
    extern "C" __global__ void split_columns(const T* x, T* a, T* b, T* c, const int* rows, long long n, long long cols, long long first,
                                             long long wa, long long wb, long long wc, int scattered) {
        const i64 width = wa + wb + wc, per = 16 / (i64)sizeof(T);
        const i64 step = ((cols | first | wa | wb | wc) % per) == 0 ? per : 1;
        for (i64 r = blockIdx.x; r < n; r += gridDim.x) {
            const T* xr = x + r * cols + first;
            T* ra = a ? a + ((scattered & 1) ? (i64)rows[r] : r) * wa : nullptr;
            T* rb = b ? b + ((scattered & 2) ? (i64)rows[r] : r) * wb : nullptr;
            T* rc = c ? c + ((scattered & 4) ? (i64)rows[r] : r) * wc : nullptr;
            for (i64 col = threadIdx.x * step; col < width; col += blockDim.x * step) {
                T* target = col < wa ? ra + col : col < wa + wb ? rb + (col - wa) : rc + (col - wa - wb);
                if (step == per) *(uint4*)target = *(const uint4*)(xr + col);
                else *target = xr[col];
            }
        }
    }

    // out [rows, width] = [a | b in 2:4 pairs | 0]: a's row (ka columns), then b's columns two at a time, each pair
    // followed by two zeros, then zeros up to width. Pairs with zeros are the 2:4 form of a dense b, so one 2:4
    // GEMM over the joined columns also adds b's product, exactly (the merged inference's stacked form).
    // Needs ka % 4 == 0 and kb % 2 == 0; a thread writes one group of 4 columns. Grid-stride.
    template <typename U> struct __align__(4 * sizeof(U)) Quad { U v[4]; };
    extern "C" __global__ void append_pairs(const T* a, const T* b, T* out, long long rows, long long ka, long long kb, long long width) {
        const i64 groups = width / 4, a_groups = ka / 4, b_groups = kb / 2;
        GRID_STRIDE(i, rows * groups) {
            i64 row = i / groups, g = i % groups;
            Quad<T> q;
            if (g < a_groups) {
                q = ((const Quad<T>*)(a + row * ka))[g];
            } else {
                q.v[0] = q.v[1] = q.v[2] = q.v[3] = from_float<T>(0.0f);
                i64 pair = g - a_groups;
                if (pair < b_groups) {
                    q.v[0] = b[row * kb + 2 * pair];
                    q.v[1] = b[row * kb + 2 * pair + 1];
                }
            }
            ((Quad<T>*)(out + row * width))[g] = q;
        }
    }
    """#
}
