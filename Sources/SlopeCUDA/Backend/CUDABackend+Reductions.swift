import SlopeCore

extension CUDABackend {
    /// Two deterministic passes: per-block partials, then one block over the partials. Result: float32 [1].
    private func reduce(_ x: Tensor, op: Int32, _ name: String) throws -> Tensor {
        let blocks = min(1024, max(1, (x.count + 255) / 256))
        let partials = try newTensor([blocks], dtype: .float32)
        let result = try newTensor([1], dtype: .float32)
        try launch(.reductions, "reduce_partials", dtype: x.dtype, grid: (blocks, 1, 1), [
            .pointer(address(x, name)), .int64(Int64(x.count)), .pointer(address(partials, name)), .int32(op),
        ])
        try launch(.reductions, "reduce_final", dtype: x.dtype, grid: (1, 1, 1), [
            .pointer(address(partials, name)), .int32(Int32(blocks)), .pointer(address(result, name)), .int32(op),
        ])
        return result
    }

    public func sum(_ x: Tensor) throws -> Tensor { try reduce(x, op: 0, "sum") }
    public func sumOfSquares(_ x: Tensor) throws -> Tensor { try reduce(x, op: 1, "sumOfSquares") }
    public func maxAbsolute(_ x: Tensor) throws -> Tensor { try reduce(x, op: 2, "maxAbsolute") }

    // out [cols] = Σ_r x[r, :], as onesᵀ·x on cuBLASLt: one read of x with FP32 accumulation, at full
    // bandwidth (a thread-per-column kernel leaves most of the GPU idle for tall matrices).
    public func sumRows(_ x: Tensor) throws -> Tensor {
        let (rows, columns) = try x.asMatrix(operation: "sumRows")
        guard rows > 0 else { return try zeros([columns], dtype: x.dtype) }
        let ones = try newTensor([1, rows], dtype: x.dtype)
        try fill(ones, with: 1)
        return try gemm(ones, x.reshaped([rows, columns]), transposeA: false, transposeB: false, alpha: 1, beta: 0, into: nil, bias: nil)
            .reshaped([columns])
    }
}
