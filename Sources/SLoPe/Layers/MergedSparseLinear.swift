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

    init(merged: CompressedMatrix, outFeatures: Int, up: Tensor, scale: Float, bias: Tensor?, backend: any Backend) {
        (self.merged, self.outFeatures, self.up, self.scale, self.bias, self.backend) = (merged, outFeatures, up, scale, bias, backend)
    }

    /// Layers of one input as one layer whose output is theirs side by side: `[W₁; W₂; …; L₁ᵀ; L₂ᵀ; …]` with `up`
    /// block-diagonal (`[Σ r, Σ out]`, each Rᵢ times its scale over the first adapter's where adapters of other
    /// ranks scale differently), one sparse GEMM and one low-rank product for all of them (a ``StackedProjection``).
    /// nil where they differ in pattern, input features or dtype, or only some have a bias.
    convenience init?(stacking layers: [MergedSparseLinear]) throws {
        guard let first = layers.first else { return nil }
        let adapted = layers.filter { $0.rank > 0 }
        guard layers.allSatisfy({ $0.merged.pattern == first.merged.pattern && $0.merged.columns == first.merged.columns
                && $0.merged.values.dtype == first.merged.values.dtype && ($0.bias == nil) == (first.bias == nil) }) else { return nil }
        let scale = adapted.first?.scale ?? 1
        let backend = first.backend
        func rows(_ tensor: Tensor, _ range: Range<Int>) throws -> Tensor {
            let slice = try backend.zeros([range.count] + tensor.shape.dropFirst(), dtype: tensor.dtype)
            try backend.copyRows(tensor, range, into: slice, at: 0)
            return slice
        }
        // Every W first, then every Lᵀ: the stacked layer's first Σ out rows are its output.
        func stack(_ part: (CompressedMatrix) -> Tensor) throws -> Tensor {
            try backend.concatenateRows(layers.map { try rows(part($0.merged), 0..<$0.outFeatures) }
                + layers.map { try rows(part($0.merged), $0.outFeatures..<$0.merged.rows) })
        }
        let (outFeatures, rank) = (layers.map(\.outFeatures).reduce(0, +), layers.map(\.rank).reduce(0, +))
        let merged = try CompressedMatrix(
            rows: outFeatures + rank, columns: first.merged.columns, pattern: first.merged.pattern, values: stack(\.values), indices: stack(\.indices))
        // R₁, R₂, … on the diagonal: each part's low-rank product reads its own adapter's columns of X·L only.
        var up = [Double](repeating: 0, count: rank * outFeatures)
        var (row, column) = (0, 0)
        for layer in layers {
            let (values, factor) = (try backend.doubles(layer.up), Double(layer.scale) / Double(scale))
            for r in 0..<layer.rank {
                for o in 0..<layer.outFeatures { up[(row + r) * outFeatures + column + o] = values[r * layer.outFeatures + o] * factor }
            }
            (row, column) = (row + layer.rank, column + layer.outFeatures)
        }
        let bias = try first.bias.map { _ in try backend.concatenateVectors(layers.compactMap(\.bias)) }
        self.init(
            merged: merged, outFeatures: outFeatures, up: try backend.tensor(up, shape: [rank, outFeatures], dtype: first.up.dtype),
            scale: scale, bias: bias, backend: backend)
    }

    public var rank: Int { merged.rows - outFeatures }

    // x [..., din] → y [..., dout]
    public func forward(_ x: Tensor) throws -> Tensor {
        try backend.mergedSparseLowRankMatmul(x, merged: merged, outFeatures: outFeatures, up: up, scale: scale, bias: bias)
    }
}
