extension KernelSources {
    /// Kernels on uint8 masks, independent of the element type T.
    static let bytes = #"""
    // y [cols, rows] = x [rows, cols]ᵀ for bytes; block (32, 8), grid (ceil(cols/32), ceil(rows/32)).
    extern "C" __global__ void transpose_u8(const unsigned char* x, unsigned char* y, long long rows, long long cols) {
        __shared__ unsigned char tile[32][33];
        long long c = (long long)blockIdx.x * 32 + threadIdx.x;
        for (int i = threadIdx.y; i < 32; i += 8) {
            long long r = (long long)blockIdx.y * 32 + i;
            if (r < rows && c < cols) tile[i][threadIdx.x] = x[r * cols + c];
        }
        __syncthreads();
        long long r = (long long)blockIdx.y * 32 + threadIdx.x;
        for (int i = threadIdx.y; i < 32; i += 8) {
            long long cc = (long long)blockIdx.x * 32 + i;
            if (r < rows && cc < cols) y[cc * rows + r] = tile[threadIdx.x][i];
        }
    }
    """#
}
