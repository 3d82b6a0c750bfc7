/// Inference form of a ``SparseLinear`` with its adapter: one sparse matrix `[W⊙Mr; Lᵀ]`
/// (`[dout + r, din]`, Lᵀ pruned N:M along din) gives `X·Wᵀ` and `X·L` in one sparse GEMM; then
/// `Y = X·Wᵀ + (X·L)·R/r + b` with the multiply-add and bias fused.
public final class MergedSparseLinear {
    public let merged: CompressedMatrix
    public let outFeatures: Int
    /// R, `[r, dout]` (`[0, dout]` without an adapter).
    public let up: Tensor
    public let scale: Float
    public let bias: Tensor?
    let backend: any Backend

    public init(weight: CompressedMatrix, adapter: LowRankAdapter?, bias: Tensor?, backend: any Backend) throws {
        self.backend = backend
        self.bias = bias
        outFeatures = weight.rows
        guard let adapter else {
            merged = weight
            up = try backend.zeros([0, weight.rows], dtype: weight.values.dtype)
            scale = 1
            return
        }
        let downTransposed = try backend.compress(backend.transpose(adapter.down.value), pattern: weight.pattern, mask: nil)
        merged = try CompressedMatrix(
            rows: weight.rows + adapter.rank, columns: weight.columns, pattern: weight.pattern,
            values: backend.concatenateRows([weight.values, downTransposed.values]),
            indices: backend.concatenateRows([weight.indices, downTransposed.indices]))
        up = adapter.up.value
        scale = adapter.scale
    }

    public var rank: Int { merged.rows - outFeatures }

    // x [..., din] → y [..., dout]
    public func forward(_ x: Tensor) throws -> Tensor {
        try backend.mergedSparseLowRankMatmul(x, merged: merged, outFeatures: outFeatures, up: up, scale: scale, bias: bias)
    }
}
