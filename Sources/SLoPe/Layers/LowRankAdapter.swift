/// SLoPe's lazy low-rank adapter: `Y += (X·L)·R / r` with `L [din, r]` random and `R [r, dout]` zero,
/// added to a ``SparseLinear`` for the last steps of training and trained densely with AdamW.
public final class LowRankAdapter: Layer {
    public let rank: Int
    /// L, `[din, r]`.
    public let down: Parameter
    /// R, `[r, dout]`.
    public let up: Parameter
    let backend: any Backend
    private var savedInput: Tensor?
    private var savedProjection: Tensor?

    /// The output scale, `1/r`.
    public var scale: Float { 1 / Float(rank) }

    public init(
        name: String, inFeatures: Int, outFeatures: Int, rank: Int, dtype: DType,
        backend: any Backend, generator: inout SeededGenerator
    ) throws {
        guard rank >= 1, rank <= min(inFeatures, outFeatures) else {
            throw TensorError.invalidArgument(
                operation: "LowRankAdapter", reason: "rank must be in 1...\(min(inFeatures, outFeatures)), got \(rank)")
        }
        self.rank = rank
        self.backend = backend
        // LoRA's initialisation: the down projection uniform(±1/√din), the up projection zero.
        let bound = 1 / Double(inFeatures).squareRoot()
        down = Parameter(name: "\(name).down", value: try backend.randomUniform([inFeatures, rank], bound: bound, dtype: dtype, using: &generator))
        up = Parameter(name: "\(name).up", value: try backend.zeros([rank, outFeatures], dtype: dtype))
    }

    public var parameters: [Parameter] { [down, up] }

    // x [..., din] → (x·L)·R/r [..., dout]
    public func forward(_ x: Tensor) throws -> Tensor {
        savedInput = x
        let projection = try backend.matmul(x, down.value)
        savedProjection = projection
        return try backend.gemm(projection, up.value, transposeA: false, transposeB: false, alpha: scale, beta: 0, into: nil, bias: nil)
    }

    /// Forgets the input and projection kept for backward.
    public func releaseActivations() {
        savedInput = nil
        savedProjection = nil
    }

    // dy [..., dout] → dx [..., din]; dR += (xL)ᵀ·dy/r, dL += xᵀ·(dy·Rᵀ/r).
    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let x = savedInput, let projection = savedProjection else {
            throw TensorError.invalidArgument(operation: "LowRankAdapter.backward", reason: "call forward first")
        }
        let dyMatrix = try dy.flattenedToMatrix("LowRankAdapter.backward")
        let xMatrix = try x.flattenedToMatrix("LowRankAdapter.backward")
        _ = try backend.gemm(
            projection.flattenedToMatrix("LowRankAdapter.backward"), dyMatrix, transposeA: true, transposeB: false,
            alpha: scale, beta: 1, into: up.gradientBuffer(backend), bias: nil)
        let dProjection = try backend.gemm(dyMatrix, up.value, transposeA: false, transposeB: true, alpha: scale, beta: 0, into: nil, bias: nil)
        _ = try backend.gemm(xMatrix, dProjection, transposeA: true, transposeB: false, alpha: 1, beta: 1, into: down.gradientBuffer(backend), bias: nil)
        let dx = try backend.matmul(dProjection, down.value, transposeB: true)
        return try dx.reshaped(x.shape)
    }

    /// Prunes L N:M along din (each column of L, i.e. each row of Lᵀ), in place, so the merged
    /// inference form computes exactly what training did.
    public func pruneDown(pattern: NMPattern) throws {
        let transposed = try backend.transpose(down.value)
        let mask = try backend.pruneMask(transposed, pattern: pattern, direction: .rowWise, within: nil)
        try backend.copy(backend.transpose(backend.applyMask(transposed, mask: mask)), into: down.value)
    }
}
