import CCUDA
import SlopeCore

/// W's forms derived for the GPU GEMMs, attached to the storage of W's compressed values and rebuilt when
/// those values change (their storage generation moves): cuSPARSELt's compressed copy per arrangement,
/// or the decompressed W for the dense route.
final class SparseOperandCache {
    var generation: UInt64
    var compressed: [CuSPARSELtMatmul.Arrangement: CUDAStorage] = [:]
    var dense: Tensor?
    init(generation: UInt64) { self.generation = generation }
}

extension CUDABackend {
    /// Whether cuSPARSELt's 2:4 kernels can run this pattern: every 4 consecutive entries keep at most 2.
    static func runsOnTwoFour(_ pattern: NMPattern) -> Bool { pattern.n <= 2 }

    /// `Y = X·Sᵀ (+ bias)`, routed by the stored or freshly measured decision for this shape.
    func sparseGEMM(_ x: Tensor, _ s: CompressedMatrix, bias: Tensor?) throws -> Tensor {
        let tokens = x.count / max(s.columns, 1)
        let operands = operandCache(for: s)
        let decision = try decide(tokens: tokens, s, operands, x)
        let output: Tensor
        switch decision.route {
        case .dense:
            return try gemm(x, denseOperand(s, operands), transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: bias)
        case .sparseA, .sparseB:
            let arrangement: CuSPARSELtMatmul.Arrangement = decision.route == .sparseA ? .sparseA : .sparseB
            let key = CuSPARSELtMatmul.Key(tokens: tokens, outFeatures: s.rows, inFeatures: s.columns, dtype: x.dtype, arrangement: arrangement)
            let plan = try cusparse().plan(for: key, configuration: decision.configuration)
            output = try newTensor(Array(x.shape.dropLast()) + [s.rows], dtype: x.dtype)
            try runSparse(plan, x, compressedOperand(s, operands, plan), output)
        }
        if let bias { try addBias(bias, to: output) }
        return output
    }

    private func runSparse(_ plan: CuSPARSELtMatmul.Plan, _ x: Tensor, _ compressed: CUDAStorage, _ output: Tensor, search: Bool = false) throws {
        let workspace = plan.workspaceBytes > 0 ? try newTensor([plan.workspaceBytes], dtype: .uint8) : nil
        try cusparse().run(
            plan, x: address(x, "sparseMatmul"), compressed: compressed.address, y: address(output, "sparseMatmul"),
            workspace: try workspace.map { try address($0, "sparseMatmul") }, search: search)
    }

    func addBias(_ bias: Tensor, to y: Tensor) throws {
        let rows = y.count / max(bias.count, 1)
        try launch(.elementwise, "add_row_vector", dtype: y.dtype, grid: rowGrid(rows: rows, columns: bias.count), [
            .pointer(address(y, "bias")), .pointer(address(bias, "bias")), .int64(Int64(rows)), .int64(Int64(bias.count)),
        ])
    }

    /// Columns across threads, rows across up to 65 535 blocks.
    func rowGrid(rows: Int, columns: Int) -> (Int, Int, Int) {
        ((columns + 255) / 256, min(max(rows, 1), 65_535), 1)
    }

    private func operandCache(for s: CompressedMatrix) -> SparseOperandCache {
        let storage = s.values.storage as! CUDAStorage
        if let cache = storage.derived as? SparseOperandCache {
            if cache.generation != storage.generation {  // W was updated: its derived forms are stale
                cache.generation = storage.generation
                cache.compressed.removeAll()
                cache.dense = nil
            }
            return cache
        }
        let cache = SparseOperandCache(generation: storage.generation)
        storage.derived = cache
        return cache
    }

    private func denseOperand(_ s: CompressedMatrix, _ operands: SparseOperandCache) throws -> Tensor {
        if let dense = operands.dense { return dense }
        let dense = try decompress(s)
        operands.dense = dense
        return dense
    }

    private func compressedOperand(_ s: CompressedMatrix, _ operands: SparseOperandCache, _ plan: CuSPARSELtMatmul.Plan) throws -> CUDAStorage {
        if let compressed = operands.compressed[plan.key.arrangement] { return compressed }
        let library = try cusparse()
        let sizes = try library.compressedBytes(plan)
        let compressed = try CUDAStorage(byteCount: sizes.compressed, device: device, allocator: allocator)
        let buffer = try newTensor([max(sizes.buffer, 1)], dtype: .uint8)
        let dense = try operands.dense ?? decompress(s)
        try library.compress(plan, dense: address(dense, "compress"), into: compressed.address, buffer: address(buffer, "compress"))
        operands.compressed[plan.key.arrangement] = compressed
        return compressed
    }

    /// The decision for this shape: forced by `SLOPE_SPARSE_GEMM`, remembered, or measured now by running
    /// both cuSPARSELt arrangements (after cuSPARSELt's own algorithm search) and the dense GEMM on the real W.
    private func decide(tokens: Int, _ s: CompressedMatrix, _ operands: SparseOperandCache, _ x: Tensor) throws -> SparseGEMMDecision {
        let key = SparseGEMMDecisionStore.key(tokens: tokens, outFeatures: s.rows, inFeatures: s.columns, dtype: x.dtype.rawValue)
        let dense = SparseGEMMDecision(route: .dense, configuration: 0, milliseconds: [:])
        // float32 stays dense: cuSPARSELt would compute it in TF32, below float32's accuracy.
        guard Self.runsOnTwoFour(s.pattern), x.dtype != .float32, cusparseLt != nil else { return dense }
        if let forced = sparseRoute, let route = SparseGEMMDecision.Route(rawValue: forced) {
            return SparseGEMMDecision(route: route, configuration: 0, milliseconds: [:])
        }
        if let known = decisions.decision(for: key) { return known }
        var timings: [String: Double] = [:]
        let denseW = try denseOperand(s, operands)
        timings["dense"] = try medianMilliseconds(repeats: 10, warmup: 2) {
            _ = try gemm(x, denseW, transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: nil)
        }
        var configurations: [String: Int32] = [:]
        for arrangement in CuSPARSELtMatmul.Arrangement.allCases {
            do {
                let plan = try cusparse().plan(for: CuSPARSELtMatmul.Key(
                    tokens: tokens, outFeatures: s.rows, inFeatures: s.columns, dtype: x.dtype, arrangement: arrangement))
                let output = try newTensor([tokens, s.rows], dtype: x.dtype)
                let compressed = try compressedOperand(s, operands, plan)
                try runSparse(plan, x, compressed, output, search: true)
                configurations[arrangement.rawValue] = plan.configuration
                timings[arrangement.rawValue] = try medianMilliseconds(repeats: 10, warmup: 2) { try runSparse(plan, x, compressed, output) }
            } catch {
                continue  // a shape this arrangement cannot take (alignment, size): the others remain
            }
        }
        let best = timings.min { $0.value < $1.value }!.key
        let decision = SparseGEMMDecision(
            route: SparseGEMMDecision.Route(rawValue: best)!, configuration: configurations[best] ?? 0, milliseconds: timings)
        decisions.record(decision, for: key)
        return decision
    }

    /// The route chosen for each sparse GEMM shape so far ("bfloat16 8192x4096x4096" → "sparseA"),
    /// with the medians that decided it.
    public var sparseGEMMChoices: [(shape: String, route: String, milliseconds: [String: Double])] {
        decisions.all.sorted { $0.key < $1.key }.map { ($0.key, $0.value.route.rawValue, $0.value.milliseconds) }
    }

    func cusparse() throws -> CuSPARSELtMatmul {
        guard let cusparseLt else { throw CUDAError.noDevice(reason: "cuSPARSELt is not available") }
        return cusparseLt
    }
}
