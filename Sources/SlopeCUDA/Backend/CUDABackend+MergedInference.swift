import SlopeCore

/// How a merged sparse + low-rank layer computes `Y = X·Wᵀ + scale·(X·L)·R + b` on the GPU.
public enum MergedInferenceForm: String, Sendable, CaseIterable {
    /// One dense GEMM with the adapter folded into W (`W + scale·Rᵀ·Lᵀ`): wins where the sparse GEMM's gain
    /// is smaller than the extra work of the other forms.
    case folded
    /// `P = X·L` (sparse), `Y = scale·P·R + b` (cuBLASLt, bias in the epilogue), then the sparse GEMM
    /// accumulates `X·Wᵀ` into Y (beta = 1).
    case factored
    /// One sparse GEMM over joined columns: `Y = [X | P̃]·[W | scale·R̃ᵀ]ᵀ + b`, where R̃ and P̃ hold R's
    /// and P's columns in pairs followed by two zeros, the 2:4 form of a dense matrix. The low-rank product
    /// then runs inside the sparse GEMM, at the cost of copying X once per call.
    case stacked
    /// slope's skinny 2:4 kernel over all of `[W; Lᵀ]` (the weights read once, sums in float), then one pass for the
    /// low-rank product and the bias: for a few rows of X (decoding), where the weights' bytes set the time.
    case skinny
}

extension SparseGEMMDecision {
    /// The merged-inference form this decision chose, or nil when it did not time every one of `forms` (a
    /// decision from before a form existed is measured again).
    func mergedForm(among forms: [MergedInferenceForm] = MergedInferenceForm.allCases) -> MergedInferenceForm? {
        guard let form = MergedInferenceForm(rawValue: route.rawValue), forms.contains(form),
              forms.allSatisfy({ milliseconds[$0.rawValue] != nil || failures?[$0.rawValue] != nil }) else { return nil }
        return form
    }
}

extension CUDABackend {
    /// The two row blocks of a merged matrix, `[W; Lᵀ]`, as their own compressed matrices, split once and
    /// kept with the merged values (re-split if those are ever written), and the forms built from them for
    /// one `up` and scale.
    final class MergedParts {
        /// A matrix made from W, L and one `up` (its storage and generation) and scale.
        struct WithUp<Value> {
            let up: CUDAStorage
            let generation: UInt64
            let scale: Float
            let value: Value
            func matches(_ up: CUDAStorage, _ scale: Float) -> Bool {
                self.up === up && generation == up.generation && self.scale == scale
            }
        }

        let generation: UInt64
        let weight: CompressedMatrix
        let down: CompressedMatrix
        /// `W + scale·Rᵀ·Lᵀ` as one dense matrix (the folded form).
        var folded: WithUp<Tensor>?
        /// `[W | scale·R̃ᵀ]`, 2:4 (the stacked form).
        var stacked: WithUp<CompressedMatrix>?
        init(generation: UInt64, weight: CompressedMatrix, down: CompressedMatrix) {
            self.generation = generation
            self.weight = weight
            self.down = down
        }
    }

    /// Rows `start ..< start + count` of a matrix as a new tensor.
    private func rows(_ tensor: Tensor, _ start: Int, _ count: Int) throws -> Tensor {
        let rowBytes = tensor.byteCount / max(tensor.shape[0], 1)
        let slice = try newTensor([count, tensor.shape[1]], dtype: tensor.dtype)
        try copyBytes(from: address(tensor, "rows") + UInt64(start * rowBytes), to: address(slice, "rows"), count: slice.byteCount)
        return slice
    }

    private func mergedParts(_ merged: CompressedMatrix, outFeatures: Int) throws -> MergedParts {
        let holder = try storage(merged.values, "mergedSparseLowRankMatmul")
        if let parts = holder.derived as? MergedParts, parts.generation == holder.generation { return parts }
        func part(_ start: Int, _ count: Int) throws -> CompressedMatrix {
            try CompressedMatrix(
                rows: count, columns: merged.columns, pattern: merged.pattern,
                values: rows(merged.values, start, count), indices: rows(merged.indices, start, count))
        }
        let parts = MergedParts(
            generation: holder.generation, weight: try part(0, outFeatures), down: try part(outFeatures, merged.rows - outFeatures))
        holder.derived = parts
        return parts
    }

    // Y = X·Wᵀ + (X·L)·R·scale + bias, from the merged [W; Lᵀ], in one of three forms (MergedInferenceForm),
    // timed per shape; `mergedInferenceForm` (SLOPE_MERGED_INFERENCE) forces one, and a forced dense route
    // (SLOPE_SPARSE_GEMM=dense) means folded. Measured on an H200 at d = 2560–9216: stacked won at 14 of 16
    // shapes, factored where X is 4d wide at 8192 tokens (copying X costs most there); folded at tiny shapes.
    public func mergedSparseLowRankMatmul(
        _ x: Tensor, merged: CompressedMatrix, outFeatures: Int, up: Tensor, scale: Float, bias: Tensor?
    ) throws -> Tensor {
        let rank = try OperandChecks.mergedSparseLowRank(x, merged: merged, outFeatures: outFeatures, up: up, bias: bias)
        if rank == 0 { return try sparseMatmul(x, merged, bias: bias) }
        let matrix = try x.reshaped([x.count / merged.columns, merged.columns])
        // W and Lᵀ split apart, made when a form that needs them first runs (the skinny form reads [W; Lᵀ] as it is).
        func parts() throws -> MergedParts { try mergedParts(merged, outFeatures: outFeatures) }
        func run(_ form: MergedInferenceForm) throws -> Tensor {
            switch form {
            case .folded:
                return try gemm(x, foldedWeight(parts(), up: up, scale: scale), transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: bias)
            case .factored:
                let parts = try parts()
                let projection = try sparseGEMM(matrix, parts.down, bias: nil)
                let y = try gemm(projection, up, transposeA: false, transposeB: false, alpha: scale, beta: 0, into: nil, bias: bias)
                return try sparseGEMM(matrix, parts.weight, bias: nil, accumulateInto: y)
            case .stacked:
                let parts = try parts()
                let weight = try stackedWeight(parts, up: up, scale: scale)
                let projection = try sparseGEMM(matrix, parts.down, bias: nil)
                return try sparseGEMM(appendingPairs(matrix, projection, width: weight.columns), weight, bias: bias)
            case .skinny:
                if let y = try skinnyMergedGEMM(matrix, merged: merged, outFeatures: outFeatures, up: up, scale: scale, bias: bias) { return y }
                return try run(.factored)  // (operands the kernel cannot read this time)
            }
        }
        let key = "merged " + SparseGEMMDecisionStore.key(
            tokens: matrix.shape[0], outFeatures: outFeatures, inFeatures: merged.columns, dtype: x.dtype.rawValue,
            bias: bias == nil ? nil : "bias") + " r=\(rank)"
        // The stacked form compresses [W | R̃] 2:4, which keeps all of W only for patterns of at most 2 in 4.
        let forms = MergedInferenceForm.allCases.filter {
            switch $0 {
            case .stacked: return Self.runsOnTwoFour(merged.pattern)
            case .skinny: return skinnyApplies(matrix, merged)
            case .folded, .factored: return true
            }
        }
        return try run(mergedForm(key, among: forms, merged, parts, run)).reshaped(Array(x.shape.dropLast()) + [outFeatures])
    }

    private func mergedForm(
        _ key: String, among forms: [MergedInferenceForm], _ merged: CompressedMatrix, _ parts: () throws -> MergedParts,
        _ run: (MergedInferenceForm) throws -> Tensor
    ) throws -> MergedInferenceForm {
        if let forced = mergedInferenceForm { return forms.contains(forced) ? forced : .factored }
        if sparseRoute == SparseGEMMDecision.Route.dense.rawValue { return .folded }
        if let form = decisions.decision(for: key)?.mergedForm(among: forms) { return form }
        var timings: [String: Double] = [:]
        var failures: [String: String] = [:]
        let reference = try run(.folded)
        for form in forms {
            // slope's own kernel is checked against the folded form before it may be chosen (see `agrees`).
            if form == .skinny {
                let (agreed, difference) = try agrees(run(form), reference)
                if !agreed {
                    failures[form.rawValue] = "disagreed with the folded form (max |difference| \(difference))"
                    continue
                }
            }
            timings[form.rawValue] = try medianMilliseconds(repeats: 10, warmup: 2) { _ = try run(form) }
        }
        // Another form must beat folded clearly: at equal times the single dense GEMM is the simpler thing to run.
        let fastest = forms.filter { timings[$0.rawValue] != nil }.min { timings[$0.rawValue]! < timings[$1.rawValue]! }!
        let form = timings[fastest.rawValue]! < 0.97 * timings[MergedInferenceForm.folded.rawValue]! ? fastest : .folded
        decisions.record(
            SparseGEMMDecision(route: SparseGEMMDecision.Route(rawValue: form.rawValue)!, milliseconds: timings,
                               failures: failures.isEmpty ? nil : failures),
            for: key)
        try release(parts(), of: merged, keeping: form)
        return form
    }

    /// Drops what only the forms not chosen use, built just to time them: the folded dense W (2 bytes per
    /// weight), the stacked matrix, cuSPARSELt's copy of W for the factored form. A later call that picks
    /// another form (another token count) builds its own again. The skinny form needs none of the parts: they go
    /// whole (W and Lᵀ split apart are a second copy of the merged values).
    private func release(_ parts: MergedParts, of merged: CompressedMatrix, keeping form: MergedInferenceForm) throws {
        if form == .skinny, let holder = merged.values.storage as? CUDAStorage, holder.derived === parts {
            holder.derived = nil
            return
        }
        if form != .folded { parts.folded = nil }
        if form != .stacked { parts.stacked = nil }
        if form != .factored {
            try detachValues(parts.weight)  // (W's values may be held only in that copy)
            (parts.weight.values.storage as? CUDAStorage)?.derived = nil
        }
    }

    private func foldedWeight(_ parts: MergedParts, up: Tensor, scale: Float) throws -> Tensor {
        let upStorage = try storage(up, "mergedSparseLowRankMatmul")
        if let folded = parts.folded, folded.matches(upStorage, scale) { return folded.value }
        let weight = try decompress(parts.weight)
        _ = try gemm(up, decompress(parts.down), transposeA: true, transposeB: false, alpha: scale, beta: 1, into: weight, bias: nil)
        parts.folded = .init(up: upStorage, generation: upStorage.generation, scale: scale, value: weight)
        return weight
    }

    /// `[W | scale·R̃ᵀ]` compressed 2:4, its width padded to a multiple of 64 (cuSPARSELt's alignment). W⊙Mr
    /// keeps at most 2 of every 4 for every pattern that runs on the 2:4 kernels, and the pairs of R̃ are the
    /// only non-zeros of theirs, so compressing by magnitude keeps every non-zero.
    private func stackedWeight(_ parts: MergedParts, up: Tensor, scale: Float) throws -> CompressedMatrix {
        let upStorage = try storage(up, "mergedSparseLowRankMatmul")
        if let stacked = parts.stacked, stacked.matches(upStorage, scale) { return stacked.value }
        let width = Self.stackedWidth(inFeatures: parts.weight.columns, rank: up.shape[0])
        let scaledUp = try self.scale(transpose(up), by: Double(scale))
        let joined = try appendingPairs(decompress(parts.weight), scaledUp, width: width)
        let weight = try compress(joined, pattern: .twoFour, mask: nil)
        parts.stacked = .init(up: upStorage, generation: upStorage.generation, scale: scale, value: weight)
        return weight
    }

    /// Columns of the stacked form's joined matrices: in + 2·rank, padded to a multiple of 64.
    static func stackedWidth(inFeatures: Int, rank: Int) -> Int { (inFeatures + 2 * rank + 63) / 64 * 64 }

    /// `[a | b in 2:4 pairs | 0]` of `width` columns (the `append_pairs` kernel): a `[rows, ka]`, b `[rows, kb]`.
    func appendingPairs(_ a: Tensor, _ b: Tensor, width: Int) throws -> Tensor {
        let operation = "appendingPairs"
        guard a.rank == 2, b.rank == 2, a.shape[0] == b.shape[0], a.dtype == b.dtype else {
            throw TensorError.shapeMismatch(operation: operation, shapes: [a.shape, b.shape], reason: "expected two matrices of one dtype with the same rows")
        }
        let (rows, ka, kb) = (a.shape[0], a.shape[1], b.shape[1])
        guard ka % 4 == 0, kb % 2 == 0, width % 4 == 0, width >= ka + 2 * kb else {
            throw TensorError.invalidArgument(
                operation: operation, reason: "needs a's columns (\(ka)) a multiple of 4, b's (\(kb)) of 2 and width \(width) ≥ \(ka + 2 * kb), a multiple of 4")
        }
        let out = try newTensor([rows, width], dtype: a.dtype)
        try launch(.layout, "append_pairs", dtype: a.dtype, grid: elementwiseGrid(rows * width / 4), [
            .pointer(address(a, operation)), .pointer(address(b, operation)), .pointer(address(out, operation)),
            .int64(Int64(rows)), .int64(Int64(ka)), .int64(Int64(kb)), .int64(Int64(width)),
        ])
        return out
    }
}
