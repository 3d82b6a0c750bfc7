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
    """#
}
