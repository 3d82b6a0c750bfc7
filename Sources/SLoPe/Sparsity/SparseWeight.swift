/// How a SLoPe weight is stored.
public enum SparseStorageMode: String, Sendable, Codable, CaseIterable {
    /// Kept values + indices for W (row-wise mask Mr) and for the double-pruned transpose; sparse kernels.
    case compressed
    /// Dense tensors with masks applied and dense GEMMs: the same numbers, for debugging and comparison.
    case simulated
}

/// Which entries of a SLoPe weight its forward mask `Mr` keeps, by magnitude.
public enum MaskSelection: Codable, Equatable, Sendable, CustomStringConvertible {
    /// N:M along din, the forward GEMM's reduction dimension: what sparse tensor cores run (SLoPe's own choice).
    case reductionDimension
    /// N:M along dout (the original's `--reduction_dim False`): no sparse kernel runs it forward, so simulated only.
    /// The backward's transpose is then N:M along its reduction dimension already, and `Mc = Mr`.
    case outputDimension
    /// The largest |w| of the whole tensor, `sparsity` of them removed (the original's `--unstructured_masking`):
    /// simulated only; the backward uses the same mask (`Mc = Mr`).
    case unstructured(sparsity: Double)

    public var description: String {
        switch self {
        case .reductionDimension: "N:M along the reduction dimension"
        case .outputDimension: "N:M along the output dimension"
        case .unstructured(let sparsity): "unstructured, \(fixedPoint(100 * sparsity, decimals: 1))% removed"
        }
    }

    /// The sparse GEMMs run this selection (otherwise only simulated storage can).
    public var hasSparseKernel: Bool { self == .reductionDimension }
}

/// The weight of a SLoPe layer, `W [dout, din]`, with everything its training needs:
/// the static row-wise N:M mask `Mr` (along din), the column-wise mask `Mc ⊆ Mr` (along dout) of the
/// double-pruned transpose used for `dX`, and a gradient kept only at `Mr`'s positions.
///
/// Masks follow one polarity everywhere: **1 / true = kept**.
public final class SparseWeight {
    public let name: String
    public let outFeatures: Int
    public let inFeatures: Int
    public let pattern: NMPattern
    public let mode: SparseStorageMode
    public let selection: MaskSelection
    let backend: any Backend

    enum Storage {
        /// `weight` holds W⊙Mr; `transpose` holds (W⊙Mc)ᵀ `[din, dout]`, N:M along dout.
        case compressed(weight: CompressedMatrix, transpose: CompressedMatrix)
        /// Dense W⊙Mr, Mr, Mc, and W⊙Mc for the backward GEMM.
        case simulated(weight: Tensor, rowMask: Tensor, columnMask: Tensor, doublePruned: Tensor)
    }

    var storage: Storage
    /// Compressed values `[dout, din/M·N]` (compressed) or dense `[dout, din]` zero outside Mr (simulated).
    public internal(set) var gradient: Tensor?

    /// Prunes `dense [dout, din]` by magnitude (N:M along din, or as `selection` says) and builds the double-pruned
    /// transpose.
    public init(
        name: String, dense: Tensor, pattern: NMPattern, mode: SparseStorageMode, selection: MaskSelection = .reductionDimension,
        backend: any Backend
    ) throws {
        guard selection.hasSparseKernel || mode == .simulated else {
            throw TensorError.invalidArgument(
                operation: "SparseWeight \(name)", reason: "a mask \(selection) has no sparse kernel; it needs simulated storage (--simulate)")
        }
        if case .unstructured(let sparsity) = selection, !(0..<1).contains(sparsity) {
            throw TensorError.invalidArgument(operation: "SparseWeight \(name)", reason: "unstructured sparsity must be in [0, 1), not \(sparsity)")
        }
        guard dense.rank == 2 else {
            throw TensorError.shapeMismatch(operation: "SparseWeight", shapes: [dense.shape], reason: "weight must be [dout, din]")
        }
        try pattern.checkDivisible(dense.shape[1], dimension: "in features (din)", operation: "SparseWeight \(name)")
        try pattern.checkDivisible(dense.shape[0], dimension: "out features (dout)", operation: "SparseWeight \(name)")
        self.name = name
        self.outFeatures = dense.shape[0]
        self.inFeatures = dense.shape[1]
        self.pattern = pattern
        self.mode = mode
        self.selection = selection
        self.backend = backend
        let rowMask: Tensor
        switch selection {
        case .reductionDimension: rowMask = try backend.pruneMask(dense, pattern: pattern, direction: .rowWise, within: nil)
        case .outputDimension: rowMask = try backend.pruneMask(dense, pattern: pattern, direction: .columnWise, within: nil)
        case .unstructured(let sparsity): rowMask = try Self.magnitudeMask(dense, removing: sparsity, backend: backend)
        }
        switch mode {
        case .compressed:
            let weight = try backend.compress(dense, pattern: pattern, mask: rowMask)
            storage = .compressed(weight: weight, transpose: try backend.doublePrunedTranspose(of: weight))
        case .simulated:
            let weight = try backend.applyMask(dense, mask: rowMask)
            let columnMask = try Self.columnMask(weight, rowMask: rowMask, pattern: pattern, selection: selection, backend: backend)
            storage = .simulated(
                weight: weight, rowMask: rowMask, columnMask: columnMask,
                doublePruned: try backend.applyMask(weight, mask: columnMask))
        }
    }

    /// The tensor the optimizer updates in place (compressed values, or the dense masked weight).
    public var values: Tensor {
        switch storage {
        case .compressed(let weight, _): return weight.values
        case .simulated(let weight, _, _, _): return weight
        }
    }

    public var dtype: DType { values.dtype }

    // MARK: Forward and backward

    /// `Y = X·(W⊙Mr)ᵀ + bias`.
    public func forward(_ x: Tensor, bias: Tensor?) throws -> Tensor {
        switch storage {
        case .compressed(let weight, _):
            return try backend.sparseMatmul(x, weight, bias: bias)
        case .simulated(let weight, _, _, _):
            return try backend.gemm(x, weight, transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: bias)
        }
    }

    /// `f(forward(x, bias:))`, the activation in the GEMM's epilogue where the backend can.
    public func forward(_ x: Tensor, bias: Tensor?, then activation: Activation) throws -> Tensor {
        switch storage {
        case .compressed(let weight, _):
            return try backend.sparseMatmulActivated(x, weight, bias: bias, activation)
        case .simulated(let weight, _, _, _):
            return try backend.linearActivated(x, weight: weight, bias: bias, activation)
        }
    }

    /// `dX = dY·(W⊙Mc)`: the double-pruned backward.
    public func inputGradient(_ dy: Tensor) throws -> Tensor {
        switch storage {
        case .compressed(_, let transpose):
            return try backend.sparseMatmul(dy, transpose, bias: nil)
        case .simulated(_, _, _, let doublePruned):
            return try backend.matmul(dy, doublePruned)
        }
    }

    /// `dX += dY·(W⊙Mc)`: the double-pruned backward added into an existing input gradient (beta = 1).
    public func addInputGradient(_ dy: Tensor, into dx: Tensor) throws {
        switch storage {
        case .compressed(_, let transpose):
            try backend.sparseMatmul(dy, transpose, accumulatingInto: dx)
        case .simulated(_, _, _, let doublePruned):
            _ = try backend.gemm(dy, doublePruned, transposeA: false, transposeB: false, alpha: 1, beta: 1, into: dx, bias: nil)
        }
    }

    /// `grad += (dYᵀ·X)` at Mr's positions only; with `biasGradient`, the layer's bias gradient `Σ dY` is added
    /// there in the same pass (a backend may fuse it into the GEMM).
    public func accumulateGradient(outputGradient dy: Tensor, input x: Tensor, biasGradient: Tensor? = nil) throws {
        let dense = try backend.linearWeightGradient(
            outputGradient: dy.flattenedToMatrix("SparseWeight gradient"), input: x.flattenedToMatrix("SparseWeight gradient"),
            into: nil, biasGradient: biasGradient)
        switch (storage, gradient) {
        case (.compressed(let weight, _), let gradient?): try backend.accumulateGathered(dense, layout: weight, into: gradient)
        case (.compressed(let weight, _), nil): gradient = try backend.gatherCompressed(dense, layout: weight)
        case (.simulated(_, let rowMask, _, _), let gradient?): try backend.accumulate(backend.applyMask(dense, mask: rowMask), into: gradient, alpha: 1)
        case (.simulated(_, let rowMask, _, _), nil): gradient = try backend.applyMask(dense, mask: rowMask)
        }
    }

    public func zeroGradient() throws {
        if let gradient { try backend.fill(gradient, with: 0) }
    }

    // MARK: After an optimizer step

    /// Brings the double-pruned transpose up to date with the new values of W. With `reselectMask`,
    /// Mc is chosen anew by magnitude from the current W⊙Mr and kept from then on.
    public func refreshTranspose(reselectMask: Bool) throws {
        switch storage {
        case .compressed(let weight, let transpose):
            if reselectMask {
                storage = .compressed(weight: weight, transpose: try backend.doublePrunedTranspose(of: weight))
            } else {
                try backend.refreshDoublePrunedTranspose(transpose, from: weight)
            }
        case .simulated(let weight, let rowMask, var columnMask, _):
            if reselectMask {
                columnMask = try Self.columnMask(weight, rowMask: rowMask, pattern: pattern, selection: selection, backend: backend)
            }
            storage = .simulated(
                weight: weight, rowMask: rowMask, columnMask: columnMask,
                doublePruned: try backend.applyMask(weight, mask: columnMask))
        }
    }

    /// Mc: N:M along dout within Mr by magnitude (the double pruning); an unstructured Mr is its own Mc.
    static func columnMask(
        _ weight: Tensor, rowMask: Tensor, pattern: NMPattern, selection: MaskSelection, backend: any Backend
    ) throws -> Tensor {
        if case .unstructured = selection { return rowMask }
        return try backend.pruneMask(weight, pattern: pattern, direction: .columnWise, within: rowMask)
    }

    /// Keeps the `1 − sparsity` largest |w| of the whole tensor (ties: the lower index first), 1 = kept.
    static func magnitudeMask(_ dense: Tensor, removing sparsity: Double, backend: any Backend) throws -> Tensor {
        let values = try backend.floats(dense)
        let kept = values.count - Int((Double(values.count) * sparsity).rounded())
        let order = values.indices.sorted { abs(values[$0]) != abs(values[$1]) ? abs(values[$0]) > abs(values[$1]) : $0 < $1 }
        var mask = [UInt8](repeating: 0, count: values.count)
        for index in order.prefix(kept) { mask[index] = 1 }
        return try backend.tensor(mask, shape: dense.shape)
    }

    // MARK: Inspection

    /// W⊙Mr as a dense `[dout, din]` tensor.
    public func prunedDense() throws -> Tensor {
        switch storage {
        case .compressed(let weight, _): return try backend.decompress(weight)
        case .simulated(let weight, _, _, _): return try backend.cast(weight, to: weight.dtype)
        }
    }

    /// W⊙Mc as a dense `[dout, din]` tensor (what the backward pass multiplies by).
    public func doublePrunedDense() throws -> Tensor {
        switch storage {
        case .compressed(_, let transpose): return try backend.transpose(backend.decompress(transpose))
        case .simulated(_, _, _, let doublePruned): return try backend.cast(doublePruned, to: doublePruned.dtype)
        }
    }

    /// Mr, `uint8 [dout, din]`, 1 = kept.
    public func rowMask() throws -> Tensor {
        switch storage {
        case .compressed(let weight, _): return try backend.mask(of: weight)
        case .simulated(_, let rowMask, _, _): return rowMask
        }
    }

    /// Mc, `uint8 [dout, din]`, 1 = kept; always a subset of Mr.
    public func columnMask() throws -> Tensor {
        switch storage {
        case .compressed(let weight, let transpose):
            // Padding slots of the transpose sit outside Mr: intersect to get the mask itself.
            let slots = try backend.transpose(backend.mask(of: transpose))
            let rowMask = try backend.mask(of: weight)
            let kept = zip(try backend.uint8s(slots), try backend.uint8s(rowMask)).map { $0 & $1 }
            return try backend.tensor(kept, shape: [outFeatures, inFeatures])
        case .simulated(_, _, let columnMask, _): return columnMask
        }
    }

    /// The compressed W⊙Mr (compressing the dense masked weight in simulated mode).
    public func compressedWeight() throws -> CompressedMatrix {
        switch storage {
        case .compressed(let weight, _): return weight
        case .simulated(let weight, let rowMask, _, _):
            guard selection.hasSparseKernel else {
                throw TensorError.invalidArgument(
                    operation: "SparseWeight \(name)", reason: "a mask \(selection) has no sparse kernel to merge into; export the model dense instead")
            }
            return try backend.compress(weight, pattern: pattern, mask: rowMask)
        }
    }

    /// Bytes of the weight as trained: values, indices, masks and the transpose.
    public var parameterBytes: Int {
        switch storage {
        case .compressed(let weight, let transpose): return weight.byteCount + transpose.byteCount
        case .simulated(let weight, let rowMask, let columnMask, let doublePruned):
            return weight.byteCount + rowMask.byteCount + columnMask.byteCount + doublePruned.byteCount
        }
    }

    /// Bytes of the gradient buffer (compressed size in compressed mode).
    public var gradientBytes: Int {
        switch mode {
        case .compressed: return pattern.keptCount(forLength: inFeatures) * outFeatures * dtype.byteSize
        case .simulated: return outFeatures * inFeatures * dtype.byteSize
        }
    }
}
