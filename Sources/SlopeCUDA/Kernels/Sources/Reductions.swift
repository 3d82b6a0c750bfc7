extension KernelSources {
    /// Reductions: per-block partials of sum / sum of squares / max |x|, their final combine, and column sums.
    static let reductions = #"""
    // Column sums in two deterministic passes. First: partial[chunk, c] = Σ x[r, c] over the chunk's rows, in
    // float. Block 256 = 32 lanes × 8 row lanes; a lane owns one 16-byte pack of columns, so a warp reads 512
    // contiguous bytes of a row. Grid (ceil(cols / (32·PACK)), chunks); cols must be a multiple of PACK.
    extern "C" __global__ void column_sums_partial(const T* x, float* partial, long long rows, long long cols, long long chunk_rows) {
        __shared__ float sums[8][32 * PACK];
        int lane = threadIdx.x & 31, rowLane = threadIdx.x >> 5;
        i64 firstColumn = (i64)blockIdx.x * 32 * PACK, column = firstColumn + lane * PACK;
        i64 first = (i64)blockIdx.y * chunk_rows, last = min(rows, first + chunk_rows);
        float acc[PACK];
        #pragma unroll
        for (int j = 0; j < PACK; ++j) acc[j] = 0.0f;
        if (column < cols) {
            for (i64 r = first + rowLane; r < last; r += 8) {
                Pack<T> p = *(const Pack<T>*)(x + r * cols + column);
                #pragma unroll
                for (int j = 0; j < PACK; ++j) acc[j] += to_float(p.v[j]);
            }
        }
        #pragma unroll
        for (int j = 0; j < PACK; ++j) sums[rowLane][lane * PACK + j] = acc[j];
        __syncthreads();
        for (int i = threadIdx.x; i < 32 * PACK; i += blockDim.x) {
            if (firstColumn + i >= cols) break;
            float s = 0.0f;
            #pragma unroll
            for (int k = 0; k < 8; ++k) s += sums[k][i];
            partial[(i64)blockIdx.y * cols + firstColumn + i] = s;
        }
    }

    // Second: out[c] = Σ_chunk partial[chunk, c] in chunk order (plus out[c] when accumulate); one thread per column.
    extern "C" __global__ void column_sum_partials(const float* partial, T* out, long long chunks, long long cols, int accumulate) {
        GRID_STRIDE(c, cols) {
            float s = accumulate ? to_float(out[c]) : 0.0f;
            for (i64 k = 0; k < chunks; ++k) s += partial[k * cols + c];
            out[c] = from_float<T>(s);
        }
    }

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

    // Multi-tensor sum of squares (a gradient norm over many tensors): block b of the grid adds the squares of
    // elements [(b − first_block)·chunk, +chunk) of its tensor into partials[b] (double per thread, as above);
    // reduce_final then adds every launch's partials in order.
    struct SquaresEntry { const T* x; long long n; long long first_block; };
    struct SquaresTable { SquaresEntry entries[MULTI_TENSORS]; int count; };
    extern "C" __global__ void sum_of_squares_multi(SquaresTable table, long long chunk, float* partials) {
        const SquaresEntry& e = table.entries[entry_of_block(table.entries, table.count, blockIdx.x)];
        i64 begin = ((i64)blockIdx.x - e.first_block) * chunk, end = min((i64)e.n, begin + chunk);
        double s = 0.0;
        for (i64 i = begin + threadIdx.x; i < end; i += blockDim.x) { double v = (double)to_float(e.x[i]); s += v * v; }
        s = block_sum_double(s);
        if (threadIdx.x == 0) partials[blockIdx.x] = (float)s;
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
