/// Projections of the same input computed as one: their weights stacked `[Σ out, in]` (dense ``Linear``s, or merged
/// SLoPe layers with their adapters), one GEMM where there were several, its output taken apart by
/// ``Backend/splitColumns(_:widths:)``. What generation does with attention's q, k and v: a decode step's
/// projections are skinny GEMMs bound by reading their weights, and one read of the stacked weight is one launch
/// instead of three, on a shape that uses the memory bandwidth better (a 2048×2048 GEMM at one row reaches about a
/// third of an H100's, a 2048×8192 one most of it).
///
/// Inference only: the parts become ``Part`` modules that have no parameters and no backward.
public final class StackedProjection {
    /// The stacked projection: a ``Linear`` or a ``MergedSparseLinear``.
    public let stacked: any Module
    /// Each part's output features, in order.
    public let widths: [Int]
    let backend: any Backend

    /// The projections stacked, or nil where they cannot be: they must all be ``Linear``s (biases all present or all
    /// absent) or all ``MergedSparseLinear``s of one pattern, with equal input features and dtypes.
    public init?(stacking parts: [any Module], backend: any Backend) throws {
        guard parts.count > 1 else { return nil }
        if let linears = parts as? [Linear] {
            guard let first = linears.first, linears.allSatisfy({ $0.inFeatures == first.inFeatures && $0.weight.value.dtype == first.weight.value.dtype
                && ($0.bias == nil) == (first.bias == nil) }) else { return nil }
            let weight = try backend.concatenateRows(linears.map(\.weight.value))
            let bias = try first.bias.map { _ in try backend.concatenateVectors(linears.compactMap { $0.bias?.value }) }
            stacked = try Linear(name: first.weight.name.replacingSuffix(".weight", with: "") + ".stacked", weight: weight, bias: bias, backend: backend)
            widths = linears.map(\.outFeatures)
        } else if let merged = parts as? [MergedSparseLinear], let layer = try MergedSparseLinear(stacking: merged) {
            stacked = layer
            widths = merged.map(\.outFeatures)
        } else {
            return nil
        }
        self.backend = backend
    }

    /// Every part's output for `x [..., in]`, in order (`[..., widths[i]]` each).
    public func forward(_ x: Tensor) throws -> [Tensor] {
        let y = try stacked.forward(x)
        let leading = Array(y.shape.dropLast())
        return try backend.splitColumns(matrix(y), widths: widths).enumerated().map { index, part in try part.reshaped(leading + [widths[index]]) }
    }

    /// ``forward(_:)`` for `x [rows, in]` with part i written to rows `rows[r]` of `destinations[i]` where one is
    /// given (nil in the result there): a decode step's keys and values go straight into the KV cache.
    public func forward(_ x: Tensor, scatteringInto destinations: [Tensor?], rows: Tensor) throws -> [Tensor?] {
        try backend.splitColumns(matrix(stacked.forward(x)), widths: widths, scatteringInto: destinations, rows: rows)
    }

    private func matrix(_ y: Tensor) throws -> Tensor {
        try y.reshaped([y.count / max(y.shape.last ?? 1, 1), y.shape.last ?? 0])
    }

    /// Part `index` of a stacked projection standing in for the projection it replaced: its forward computes the whole
    /// stack and keeps its own columns (callers that want all of them call ``StackedProjection/forward(_:)`` once).
    public final class Part: Module, InferenceOnlyModule {
        public let projection: StackedProjection
        public let index: Int

        init(_ projection: StackedProjection, index: Int) {
            self.projection = projection
            self.index = index
        }

        public var parameters: [Parameter] { [] }
        public func forward(_ x: Tensor) throws -> Tensor { try projection.forward(x)[index] }
        public func releaseActivations() {}
        public func backward(_ dy: Tensor) throws -> Tensor {
            throw TensorError.invalidArgument(operation: "StackedProjection.backward", reason: "stacked projections are for inference; train the model before stacking them")
        }
    }
}

/// A module that only runs forward (a merged SLoPe layer, a part of a stacked projection): a model holding one can be
/// neither trained nor written as a checkpoint or a Hugging Face folder, its weights no longer in the form those hold.
public protocol InferenceOnlyModule: Module {}

extension BlockModel {
    /// Whether merging or stacking has made the model inference-only (see ``InferenceOnlyModule``).
    public var isPreparedForInference: Bool {
        projectionBlocks.contains { block in (block.attention.projections + block.mlp.projections).contains { $0 is InferenceOnlyModule } }
    }

    /// Throws, saying what to do, where the model is inference-only and `operation` would write its weights.
    func checkWritable(_ operation: String) throws {
        guard !isPreparedForInference else {
            throw TensorError.invalidArgument(
                operation: operation, reason: "the model's layers are merged or stacked for inference; write the model before preparing it for generation")
        }
    }
}

extension Backend {
    /// Vectors end to end: stacked layers' biases.
    func concatenateVectors(_ vectors: [Tensor]) throws -> Tensor {
        try concatenateRows(vectors.map { try $0.reshaped([$0.count, 1]) }).reshaped([vectors.map(\.count).reduce(0, +)])
    }
}
