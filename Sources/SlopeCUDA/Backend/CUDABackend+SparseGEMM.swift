import CCUDA
import Foundation
import SlopeCore

/// W's forms derived for the GPU GEMMs, attached to the storage of W's compressed values and brought up to
/// date when those values change (their storage generation moves): cuSPARSELt's compressed copy per
/// arrangement, or the decompressed W for the dense route.
final class SparseOperandCache {
    /// cuSPARSELt's compressed W for one arrangement, and where its values sit.
    struct Compressed {
        let storage: CUDAStorage
        /// Where each value position in `storage` takes its value from; nil when the layout could not be
        /// learned (then the whole matrix is compressed again on every change).
        let valueMap: ValueMap?
        var generation: UInt64
        /// The value map turned around (slot → position), where it packs periodically; see ``InverseMap``.
        var inverse: InverseMap? = nil
    }

    /// For each slot of the matrix's compressed values, its position in cuSPARSELt's copy: kept only where it
    /// packs periodically (a few KB), which lets the transpose go from cuSPARSELt's copy of W into its copy of
    /// Wᵀ directly (`transpose_copy_tiled`).
    struct InverseMap {
        let bases: CUDAStorage
        let offsets: CUDAStorage
        let packing: Packing.Candidate
        /// Runs of this many slots (8, else 1) sit at as many consecutive positions, aligned: moved as vectors.
        let runs: Int
    }

    /// The entry whose copy is `storage`.
    func entry(holding storage: CUDAStorage) -> Compressed? {
        compressed.values.first { $0.storage === storage }
    }

    /// For each value position of cuSPARSELt's compressed W, the slot of W's compressed values it holds.
    enum ValueMap {
        /// One uint32 slot per position (4 bytes per kept value).
        case wide(CUDAStorage)
        /// Per block of 2^log2Block positions the uint32 slot of its first one, and int16 offsets from it: one per
        /// position (≈ 2 bytes per kept value), or, when every block's offsets are the first block's, only
        /// those (`periodic`; a few KB per matrix).
        case packed(bases: CUDAStorage, offsets: CUDAStorage, packing: Packing.Candidate)
    }

    /// How a learned map is packed: the block size (and whether the offsets repeat) that takes the fewest bytes.
    enum Packing {
        /// Block sizes tried, as log2 of the positions per block.
        static let log2BlockSizes = [14, 12, 10, 8, 6]

        struct Candidate: Equatable {
            let log2Block: Int
            let periodic: Bool

            /// Bases kept for a map of `count` positions, one per block.
            func bases(count: Int) -> Int { (count + (1 << log2Block) - 1) >> log2Block }
            /// Offsets kept: one per position, or the first block's when they repeat.
            func offsets(count: Int) -> Int { periodic ? min(count, 1 << log2Block) : count }
            /// Which offset position p reads: `offsets[p & offsetMask]`.
            var offsetMask: Int64 { periodic ? (1 << Int64(log2Block)) - 1 : -1 }
        }

        static func bytes(_ candidate: Candidate, count: Int) -> Int {
            candidate.bases(count: count) * 4 + candidate.offsets(count: count) * 2
        }

        /// The candidate taking the fewest bytes (the larger block at a tie), nil when there is none.
        static func cheapest(_ candidates: [Candidate], count: Int) -> Candidate? {
            candidates.min { (bytes($0, count: count), -$0.log2Block) < (bytes($1, count: count), -$1.log2Block) }
        }
    }

    var generation: UInt64
    var compressed: [CuSPARSELtMatmul.Arrangement: Compressed] = [:]
    var dense: Tensor?
    init(generation: UInt64) { self.generation = generation }

    /// W's values were updated inside `copy` itself (and moved to `generation`): that copy is current, every
    /// other form of W stale.
    func steppedInPlace(_ copy: CUDAStorage, generation: UInt64) {
        self.generation = generation
        dense = nil
        for (arrangement, entry) in compressed where entry.storage === copy { compressed[arrangement]?.generation = generation }
    }
}

extension CUDABackend {
    /// Whether cuSPARSELt's 2:4 kernels can run this pattern: every 4 consecutive entries keep at most 2.
    static func runsOnTwoFour(_ pattern: NMPattern) -> Bool { pattern.n <= 2 }

    /// `Y = X·Sᵀ (+ bias)`, routed by the stored or freshly measured decision for this shape.
    /// With `accumulateInto`, adds `X·Sᵀ` to that tensor (beta = 1) instead of writing a new one; `bias`
    /// is then not allowed (the caller folds it into what it accumulates into).
    /// With `relu`, returns `max(Y, 0)`: in the epilogue (cuBLASLt's on the dense route, cuSPARSELt's activation
    /// with W as the A operand) under the `activation-epilogue` fusion, else by the activation kernel after.
    func sparseGEMM(_ x: Tensor, _ s: CompressedMatrix, bias: Tensor?, accumulateInto target: Tensor? = nil, relu: Bool = false) throws -> Tensor {
        let tokens = x.count / max(s.columns, 1)
        let operands = operandCache(for: s)
        defer { evictValues(of: s, operands) }
        let decision = try decide(tokens: tokens, s, operands, x, bias: bias)
        let output: Tensor
        switch decision.route {
        case .skinny:
            if let skinny = try skinnySparseGEMM(x, s, bias: bias, accumulateInto: target) { return relu ? try activation(skinny, .relu) : skinny }
            fallthrough  // (operands the kernel cannot read this time: the dense GEMM)
        case .dense, .folded, .factored, .stacked:  // (the last three name merged-inference forms, never a single GEMM's)
            if relu { return try linearActivated(x, weight: denseOperand(s, operands), bias: bias, .relu) }
            return try gemm(
                x, denseOperand(s, operands), transposeA: false, transposeB: true, alpha: 1, beta: target == nil ? 0 : 1,
                into: target, bias: bias)
        case .sparseA, .sparseB:
            let arrangement: CuSPARSELtMatmul.Arrangement = decision.route == .sparseA ? .sparseA : .sparseB
            // sparseA's D is column-major [out, T]: a bias over the output features fits cuSPARSELt's epilogue.
            let epilogueBias = sparseBiasEpilogue && arrangement == .sparseA ? bias : nil
            // ReLU after the bias: in the epilogue only where the bias is added there too (or there is none).
            var epilogueReLU = relu && arrangement == .sparseA && target == nil && fusions.contains(.activationEpilogue)
                && (bias == nil || epilogueBias != nil)
            var key = CuSPARSELtMatmul.Key(
                tokens: tokens, outFeatures: s.rows, inFeatures: s.columns, dtype: x.dtype, arrangement: arrangement,
                bias: try epilogueBias.map { try address($0, "sparseMatmul") }, relu: epilogueReLU)
            if epilogueReLU, reluEpilogueRefusals.withLock({ $0.contains(key) }) { (epilogueReLU, key.relu) = (false, false) }
            let plan: CuSPARSELtMatmul.Plan
            do {
                plan = try decidedPlan(key, decision)
            } catch where epilogueReLU {  // (no configuration with the activation epilogue: the kernel after, from now on)
                reluEpilogueRefusals.withLock { _ = $0.insert(key) }
                (epilogueReLU, key.relu) = (false, false)
                plan = try decidedPlan(key, decision)
            }
            output = try target ?? newTensor(Array(x.shape.dropLast()) + [s.rows], dtype: x.dtype)
            if target != nil { try touch(output) }
            try runSparse(plan, x, compressedOperand(s, operands, plan), output, beta: target == nil ? 0 : 1)
            if epilogueReLU { return output }
            if epilogueBias != nil { return relu ? try activation(output, .relu) : output }
        }
        if let bias { try addBias(bias, to: output) }
        return relu ? try activation(output, .relu) : output
    }

    /// Gives back the operand's compressed values after a GEMM when they can be recomputed: the transpose's
    /// (from W), and W's own while a current cuSPARSELt copy with a learned layout holds them (read back from it
    /// when an op needs them: the transpose's recomputation, a checkpoint; AdamW steps them inside the copy).
    /// 1 byte per weight of a 2:4 bf16 matrix each. The transpose's cuSPARSELt copies go too (setMetadataAside), and
    /// so does its decompressed form where the measured route is the dense GEMM.
    private func evictValues(of s: CompressedMatrix, _ operands: SparseOperandCache) {
        for copy in operands.compressed.values { copy.storage.evict() }  // (a no-op for copies that hold primary values)
        guard let storage = s.values.storage as? CUDAStorage else { return }
        if case .doublePrunedTranspose? = storage.derivation { operands.dense = nil }  // (the dense route's form, likewise rebuilt)
        guard storage.isResident else { return }
        if storage.derivation == nil || storage.derivesFromCompressedCopy,
           let copy = operands.compressed.values.first(where: { $0.generation == storage.generation && $0.valueMap != nil }),
           let map = copy.valueMap {
            storage.derivation = .compressedCopy(copy.storage, map: map, count: s.values.count, dtype: s.values.dtype)
        }
        storage.evict()
    }

    /// After an optimizer step wrote W's values where they are kept (W's values were in memory: a first step, a
    /// step after a checkpoint was read, a copy without a learned layout): brings W's cuSPARSELt copies with a
    /// learned layout up to date now and gives the values back, rather than holding every weight's values until
    /// the next forward. Weights no GEMM has used yet are left as they are.
    func settleValues(of w: CompressedMatrix) throws {
        guard let storage = w.values.storage as? CUDAStorage, storage.isResident, storage.derived is SparseOperandCache else { return }
        let operands = operandCache(for: w)
        for (arrangement, var entry) in operands.compressed where entry.generation != operands.generation {
            guard let map = entry.valueMap else { continue }  // (copies compressed whole wait for their next use)
            try scatterValues(w, through: map, into: entry.storage)
            entry.generation = operands.generation
            operands.compressed[arrangement] = entry
        }
        evictValues(of: w, operands)
    }

    /// Makes W's values primary again (read back first if evicted), before cuSPARSELt copies they may be read
    /// back from are dropped; the next GEMM evicts them again against the copy that remains.
    func detachValues(_ s: CompressedMatrix) throws {
        guard let storage = s.values.storage as? CUDAStorage, storage.derivesFromCompressedCopy else { return }
        _ = try self.storage(s.values, "detachValues")
        storage.derivation = nil
    }

    private func runSparse(
        _ plan: CuSPARSELtMatmul.Plan, _ x: Tensor, _ compressed: CUDAStorage, _ output: Tensor, beta: Float = 0, search: Bool = false
    ) throws {
        let workspace = plan.workspaceBytes > 0 ? try newTensor([plan.workspaceBytes], dtype: .uint8) : nil
        try cusparse().run(
            plan, x: address(x, "sparseMatmul"), compressed: compressed.address, y: address(output, "sparseMatmul"),
            workspace: try workspace.map { try address($0, "sparseMatmul") }, beta: beta, search: search)
    }

    func addBias(_ bias: Tensor, to y: Tensor) throws {
        let rows = y.count / max(bias.count, 1)
        let pack = 16 / y.dtype.byteSize  // the kernel adds whole 16-byte packs when rows are made of them
        let threads = bias.count % pack == 0 ? bias.count / pack : bias.count
        try launch(.elementwise, "add_row_vector", dtype: y.dtype, grid: rowGrid(rows: rows, columns: threads), [
            .pointer(address(y, "bias")), .pointer(address(bias, "bias")), .int64(Int64(rows)), .int64(Int64(bias.count)),
        ])
    }

    /// Columns across threads, rows in strips of 16 (`ROWS_PER_BLOCK` in the kernels) across blocks.
    func rowGrid(rows: Int, columns: Int) -> (Int, Int, Int) {
        ((columns + 255) / 256, min(max((rows + 15) / 16, 1), 65_535), 1)
    }

    private func operandCache(for s: CompressedMatrix) -> SparseOperandCache {
        let storage = s.values.storage as! CUDAStorage
        if let cache = storage.derived as? SparseOperandCache {
            if cache.generation != storage.generation {  // W was updated: the dense copy is stale
                cache.generation = storage.generation  // (compressed copies check their own generation)
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

    /// cuSPARSELt's compressed W for `plan`'s arrangement, current with W's values. The first time, the format
    /// is built and (for 2:4) the position of every value in it is learned; after that, a change of W only
    /// rewrites the values (one gather), since the mask and so the metadata stay the same.
    private func compressedOperand(_ s: CompressedMatrix, _ operands: SparseOperandCache, _ plan: CuSPARSELtMatmul.Plan) throws -> CUDAStorage {
        let generation = operands.generation
        if var entry = operands.compressed[plan.key.arrangement] {
            if !entry.storage.isResident {
                try restore(entry.storage)  // a copy given back between uses: its metadata and the current values
            } else if entry.generation == generation {
                return entry.storage
            } else if let map = entry.valueMap {
                try scatterValues(s, through: map, into: entry.storage)
            } else {
                try compressWhole(s, plan, into: entry.storage)
            }
            entry.generation = generation
            operands.compressed[plan.key.arrangement] = entry
            return entry.storage
        }
        let sizes = try cusparse().compressedBytes(plan)
        let storage = try CUDAStorage(byteCount: sizes.compressed, device: device, allocator: allocator)
        let learned = try s.pattern == .twoFour ? learnValueLayout(s, plan, into: storage) : nil
        if let learned, let folder = ProcessInfo.processInfo.environment["SLOPE_VALUE_MAP_DUMP"] {
            try dumpValueMap(learned, of: s, plan, folder: folder)
        }
        let map = try learned.map { try packed($0, count: s.values.count, dtype: s.values.dtype) }
        if let map {
            try scatterValues(s, through: map, into: storage)
            try setMetadataAside(storage, of: s, map: map)
        } else {
            try compressWhole(s, plan, into: storage)
        }
        let inverse = try learned.flatMap { try invertedMap($0, count: s.values.count, dtype: s.values.dtype) }
        operands.compressed[plan.key.arrangement] = SparseOperandCache.Compressed(
            storage: storage, valueMap: map, generation: generation, inverse: inverse)
        return storage
    }

    /// When the matrix's values are themselves recomputed (the double-pruned transpose's, from W), its cuSPARSELt
    /// copy need not stay between uses either: the metadata (after the values; 1/9 of the copy in bf16) is kept
    /// aside, and the copy is given back after each GEMM and rebuilt from the metadata and the values when next
    /// used. That is 1 byte per weight of a 2:4 bf16 matrix.
    private func setMetadataAside(_ copy: CUDAStorage, of s: CompressedMatrix, map: SparseOperandCache.ValueMap) throws {
        let values = try unrestoredStorage(s.values, "sparseMatmul")
        guard case .doublePrunedTranspose? = values.derivation else { return }
        let valueBytes = s.values.count * s.values.dtype.byteSize
        let metadata = try CUDAStorage(byteCount: copy.byteCount - valueBytes, device: device, allocator: allocator)
        try copyBytes(from: copy.address + UInt64(valueBytes), to: metadata.address, count: metadata.byteCount)
        copy.derivation = .sparseOperand(
            values: .init(storage: values), count: s.values.count, dtype: s.values.dtype, metadata: metadata, map: map)
    }

    /// Writes W's current values into cuSPARSELt's compressed copy (metadata untouched).
    private func scatterValues(_ s: CompressedMatrix, through map: SparseOperandCache.ValueMap, into storage: CUDAStorage) throws {
        try copyThroughMap(map, values: address(s.values, "compress"), compressed: storage.address, count: s.values.count, dtype: s.values.dtype, gather: false)
    }

    /// The packed-map copies' grid: a thread takes 8 positions where `count` is a multiple of 8 (the kernels' 16-byte
    /// path; grid-stride loops do the rest, and take single positions otherwise) — a thread per position left 7 of
    /// every 8 blocks without work.
    static func packedMapGrid(count: Int) -> (Int, Int, Int) {
        elementwiseGrid(count % 8 == 0 ? count / 8 : count)
    }

    /// `compressed[p] = values[map(p)]` (scatter), or back (`gather`: W's values read out of cuSPARSELt's copy).
    func copyThroughMap(
        _ map: SparseOperandCache.ValueMap, values: CUdeviceptr, compressed: CUdeviceptr, count: Int, dtype: DType, gather: Bool
    ) throws {
        let (source, destination) = gather ? (compressed, values) : (values, compressed)
        switch map {
        case .wide(let slots):
            try launch(.compressedLayout, gather ? "gather_values" : "scatter_values", dtype: dtype, grid: elementwiseGrid(count), [
                .pointer(source), .pointer(slots.address), .pointer(destination), .int64(Int64(count)),
            ])
        case .packed(let bases, let offsets, let packing):
            try launch(.compressedLayout, gather ? "gather_values_packed" : "scatter_values_packed", dtype: dtype, grid: Self.packedMapGrid(count: count), [
                .pointer(source), .pointer(bases.address), .pointer(offsets.address), .pointer(destination), .int64(Int64(count)),
                .int32(Int32(packing.log2Block)), .int64(packing.offsetMask),
            ])
        }
    }

    /// The learned map in 16 bits where its offsets allow, at the block size that takes the fewest bytes (see
    /// ``SparseOperandCache/Packing``), else as it is.
    private func packed(_ map: CUDAStorage, count: Int, dtype: DType) throws -> SparseOperandCache.ValueMap {
        let bad = try newTensor([1], dtype: .int32)
        func holds(_ kernel: String, _ log2Block: Int) throws -> Bool {
            try memsetZero(bad)
            try launch(.compressedLayout, kernel, dtype: dtype, grid: elementwiseGrid(count), [
                .pointer(map.address), .pointer(address(bad, "packValueMap")), .int64(Int64(count)), .int32(Int32(log2Block)),
            ])
            return try int32s(bad)[0] == 0
        }
        var candidates: [SparseOperandCache.Packing.Candidate] = []
        for log2Block in SparseOperandCache.Packing.log2BlockSizes {
            guard try holds("check_block_offsets", log2Block) else { continue }  // some offset is beyond int16
            candidates.append(.init(log2Block: log2Block, periodic: try holds("check_periodic_offsets", log2Block)))
        }
        guard let choice = SparseOperandCache.Packing.cheapest(candidates, count: count) else { return .wide(map) }
        let bases = try CUDAStorage(byteCount: choice.bases(count: count) * 4, device: device, allocator: allocator)
        let offsets = try CUDAStorage(byteCount: max(choice.offsets(count: count) * 2, 16), device: device, allocator: allocator)
        try launch(.compressedLayout, "pack_block_offsets", dtype: dtype, grid: elementwiseGrid(count), [
            .pointer(map.address), .pointer(bases.address), .pointer(offsets.address), .int64(Int64(count)), .int32(Int32(choice.log2Block)),
            .int64(Int64(choice.offsets(count: count))),
        ])
        return .packed(bases: bases, offsets: offsets, packing: choice)
    }

    /// `SLOPE_VALUE_MAP_DUMP=folder`: writes a learned map (uint32 per position of cuSPARSELt's values region: the
    /// slot of W's compressed order it holds) to `folder/<rows>x<cols>-<arrangement>-<dtype>.u32`, for studying
    /// cuSPARSELt's layout. A diagnostic; nothing reads these files back.
    private func dumpValueMap(_ map: CUDAStorage, of s: CompressedMatrix, _ plan: CuSPARSELtMatmul.Plan, folder: String) throws {
        var words = [UInt32](repeating: 0, count: s.values.count)
        try cudaDevice.makeCurrent()
        try words.withUnsafeMutableBytes { bytes in
            try cudaDevice.driver.check(
                cudaDevice.driver.cuMemcpyDtoHAsync(bytes.baseAddress!, map.address, bytes.count, cudaDevice.stream), "cuMemcpyDtoHAsync")
            try cudaDevice.synchronize()
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let name = "\(s.rows)x\(s.columns)-\(plan.key.arrangement.rawValue)-\(s.values.dtype).u32"
        try words.withUnsafeBytes { Data($0) }.write(to: URL(fileURLWithPath: folder).appendingPathComponent(name))
    }

    /// The learned map turned around (slot → position), kept where it packs periodically; nil otherwise (it would
    /// cost as much memory as the map itself).
    private func invertedMap(_ map: CUDAStorage, count: Int, dtype: DType) throws -> SparseOperandCache.InverseMap? {
        let inverse = try CUDAStorage(byteCount: count * 4, device: device, allocator: allocator)
        try launch(.compressedLayout, "invert_map", dtype: dtype, grid: elementwiseGrid(count), [
            .pointer(map.address), .pointer(inverse.address), .int64(Int64(count)),
        ])
        guard case .packed(let bases, let offsets, let packing) = try packed(inverse, count: count, dtype: dtype), packing.periodic else { return nil }
        var runs = 1
        if count % 8 == 0 {
            let bad = try zeros([1], dtype: .int32)
            try launch(.compressedLayout, "check_runs", dtype: dtype, grid: elementwiseGrid(count), [
                .pointer(inverse.address), .pointer(address(bad, "invertedMap")), .int64(Int64(count)), .int32(8),
            ])
            if try int32s(bad)[0] == 0 { runs = 8 }
        }
        return .init(bases: bases, offsets: offsets, packing: packing, runs: runs)
    }

    /// Compresses the decompressed W with cuSPARSELt.
    private func compressWhole(_ s: CompressedMatrix, _ plan: CuSPARSELtMatmul.Plan, into storage: CUDAStorage) throws {
        let library = try cusparse()
        let buffer = try newTensor([max(try library.compressedBytes(plan).buffer, 1)], dtype: .uint8)
        let dense = try decompress(s)
        try library.compress(plan, dense: address(dense, "compress"), into: storage.address, buffer: address(buffer, "compress"))
    }

    /// Learns where cuSPARSELt puts each value: W's slot numbers are written, one base-256 digit at a time, as
    /// the values of a matrix with W's mask, compressed, and read back from the values region. Returns the map
    /// only if it is a permutation of the slots (otherwise the format is not what this assumes, and nil makes
    /// the caller compress whole matrices instead). Leaves `storage` holding the metadata for W's mask.
    private func learnValueLayout(_ s: CompressedMatrix, _ plan: CuSPARSELtMatmul.Plan, into storage: CUDAStorage) throws -> CUDAStorage? {
        let count = s.values.count
        guard count > 0, count < Int(UInt32.max), storage.byteCount >= count * s.values.dtype.byteSize else { return nil }
        let library = try cusparse()
        let buffer = try newTensor([max(try library.compressedBytes(plan).buffer, 1)], dtype: .uint8)
        let map = try CUDAStorage(byteCount: count * 4, device: device, allocator: allocator)
        let digits = max(1, (Int(UInt64(count - 1).bitWidth - UInt64(count - 1).leadingZeroBitCount) + 7) / 8)
        let dense = try newTensor(s.shape, dtype: s.values.dtype)
        let sparseArguments: [KernelArgument] = [.int64(Int64(s.rows)), .int64(Int64(s.columns)), .int32(Int32(s.pattern.n)), .int32(Int32(s.pattern.m))]
        let indices = try slotIndices(s.indices, "learn")
        for digit in 0..<digits {
            try memsetZero(dense)
            try launch(.compressedLayout, "encode_slots", dtype: dense.dtype, grid: elementwiseGrid(count),
                       [indices.pointer, .pointer(address(dense, "learn"))] + sparseArguments + [.int32(Int32(8 * digit)), indices.bits])
            try library.compress(plan, dense: address(dense, "learn"), into: storage.address, buffer: address(buffer, "learn"))
            try launch(.compressedLayout, "decode_digits", dtype: dense.dtype, grid: elementwiseGrid(count), [
                .pointer(storage.address), .pointer(map.address), .int64(Int64(count)), .int32(Int32(8 * digit)), .int32(digit == 0 ? 1 : 0),
            ])
        }
        let counts = try zeros([count], dtype: .int32)
        let bad = try zeros([1], dtype: .int32)
        try launch(.compressedLayout, "count_map", dtype: dense.dtype, grid: elementwiseGrid(count), [
            .pointer(map.address), .pointer(address(counts, "learn")), .pointer(address(bad, "learn")), .int64(Int64(count)),
        ])
        try launch(.compressedLayout, "check_counts", dtype: dense.dtype, grid: elementwiseGrid(count), [
            .pointer(address(counts, "learn")), .pointer(address(bad, "learn")), .int64(Int64(count)),
        ])
        return try int32s(bad)[0] == 0 ? map : nil
    }

    /// cuSPARSELt's plan for `key` with the algorithm the decision recorded where it was searched at this token count
    /// (``SparseGEMMDecision/algorithm(at:)``); cuSPARSELt's default algorithm at the bucket's other counts, and
    /// where the recorded one cannot be planned.
    private func decidedPlan(_ key: CuSPARSELtMatmul.Key, _ decision: SparseGEMMDecision) throws -> CuSPARSELtMatmul.Plan {
        guard let algorithm = decision.algorithm(at: key.tokens) else { return try cusparse().plan(for: key) }
        do {
            return try cusparse().plan(for: key, algorithm: algorithm)
        } catch {
            return try cusparse().plan(for: key)
        }
    }

    /// The decision for this shape: forced by `SLOPE_SPARSE_GEMM`, remembered, or measured now by running
    /// both cuSPARSELt arrangements (after cuSPARSELt's own algorithm search) and the dense GEMM on the real W.
    /// With a bias each is timed with it added the way that route adds it (cuBLASLt's epilogue, cuSPARSELt's for
    /// sparseA, a kernel pass for sparseB): at 8192×16384×4096 on an H200 the arrangements differ by 1% without
    /// it and the kernel pass costs 13% of the GEMM.
    private func decide(tokens: Int, _ s: CompressedMatrix, _ operands: SparseOperandCache, _ x: Tensor, bias: Tensor?) throws -> SparseGEMMDecision {
        let key = SparseGEMMDecisionStore.key(tokens: tokens, outFeatures: s.rows, inFeatures: s.columns, dtype: x.dtype.rawValue,
            bias: bias == nil ? nil : sparseBiasEpilogue ? "bias" : "bias-kernel")
        let dense = SparseGEMMDecision(route: .dense, milliseconds: [:])
        let skinny = skinnyApplies(x, s)
        // float32 stays dense: cuSPARSELt would compute it in TF32, below float32's accuracy.
        guard Self.runsOnTwoFour(s.pattern), x.dtype != .float32, cusparseLt != nil || skinny else { return dense }
        if let forced = sparseRoute, let route = SparseGEMMDecision.Route(rawValue: forced) {
            if route == .skinny { return skinny ? SparseGEMMDecision(route: .skinny, milliseconds: [:]) : dense }
            // A forced arrangement still needs a shape cuSPARSELt takes (e.g. ≥ 16 rows); others run dense, as a
            // measured choice would.
            let arrangement = CuSPARSELtMatmul.Arrangement(rawValue: forced)
            if let arrangement, (try? cusparse().plan(for: CuSPARSELtMatmul.Key(
                tokens: tokens, outFeatures: s.rows, inFeatures: s.columns, dtype: x.dtype, arrangement: arrangement))) == nil {
                return dense
            }
            return SparseGEMMDecision(route: route, milliseconds: [:])
        }
        if let known = decisions.decision(for: key) { return known }
        var timings: [String: Double] = [:]
        let denseW = try denseOperand(s, operands)
        timings["dense"] = try medianMilliseconds(repeats: 10, warmup: 2) {
            _ = try gemm(x, denseW, transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: bias)
        }
        var algorithms: [String: CuSPARSELtMatmul.Algorithm] = [:]
        var failures: [String: String] = [:]
        if skinny {
            try timeSkinny(x, s, bias: bias, denseW: denseW, into: &timings, failures: &failures)
        }
        for arrangement in cusparseLt == nil ? [] : CuSPARSELtMatmul.Arrangement.allCases {
            do {
                let plan = try cusparse().plan(for: CuSPARSELtMatmul.Key(
                    tokens: tokens, outFeatures: s.rows, inFeatures: s.columns, dtype: x.dtype, arrangement: arrangement))
                let output = try newTensor([tokens, s.rows], dtype: x.dtype)
                let compressed = try compressedOperand(s, operands, plan)
                try runSparse(plan, x, compressed, output, search: true)
                algorithms[arrangement.rawValue] = plan.algorithm
                let epilogueBias = sparseBiasEpilogue && arrangement == .sparseA ? bias : nil
                let timed = try epilogueBias.map { bias in
                    try cusparse().plan(
                        for: CuSPARSELtMatmul.Key(
                            tokens: tokens, outFeatures: s.rows, inFeatures: s.columns, dtype: x.dtype, arrangement: arrangement,
                            bias: try address(bias, "sparseMatmul")),
                        algorithm: plan.algorithm)
                } ?? plan
                timings[arrangement.rawValue] = try medianMilliseconds(repeats: 10, warmup: 2) {
                    try runSparse(timed, x, compressed, output)
                    if let bias, epilogueBias == nil { try addBias(bias, to: output) }
                }
            } catch {
                failures[arrangement.rawValue] = "\(error)"  // a shape this arrangement cannot take: the others remain
            }
        }
        let best = timings.min { $0.value < $1.value }!.key
        let decision = SparseGEMMDecision(
            route: SparseGEMMDecision.Route(rawValue: best)!, algorithm: algorithms[best], milliseconds: timings,
            failures: failures.isEmpty ? nil : failures, searchedTokens: tokens)
        decisions.record(decision, for: key)
        // Keep only the chosen route's operand: the others were built just to be timed.
        try detachValues(s)
        for arrangement in CuSPARSELtMatmul.Arrangement.allCases where arrangement.rawValue != best {
            operands.compressed[arrangement] = nil
        }
        if decision.route != .dense { operands.dense = nil }
        return decision
    }

    /// Times the skinny kernel for `decide`, after checking its output against the dense GEMM's: a kernel that
    /// disagrees is recorded as failed, never chosen.
    private func timeSkinny(
        _ x: Tensor, _ s: CompressedMatrix, bias: Tensor?, denseW: Tensor, into timings: inout [String: Double], failures: inout [String: String]
    ) throws {
        let route = SparseGEMMDecision.Route.skinny.rawValue
        guard let output = try skinnySparseGEMM(x, s, bias: bias) else { return }
        let (agreed, difference) = try agrees(output, gemm(x, denseW, transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: bias))
        guard agreed else {
            failures[route] = "disagreed with the dense GEMM (max |difference| \(difference))"
            return
        }
        timings[route] = try medianMilliseconds(repeats: 10, warmup: 2) { _ = try skinnySparseGEMM(x, s, bias: bias) }
    }

    /// The route chosen for each sparse GEMM shape so far ("bfloat16 8192x4096x4096" → "sparseA"),
    /// with the medians that decided it.
    public var sparseGEMMChoices: [(shape: String, route: String, milliseconds: [String: Double], failures: [String: String])] {
        decisions.all.sorted { $0.key < $1.key }.map { key, decision in
            // The searched cuSPARSELt algorithm too, e.g. "sparseA (config 12, split-K 2)".
            let route = decision.algorithm.map { algorithm in
                "\(decision.route.rawValue) (config \(algorithm.configuration)"
                    + (algorithm.splitK > 1 ? ", split-K \(algorithm.splitK)" : "") + ")"
            } ?? decision.route.rawValue
            return (key, route, decision.milliseconds, decision.failures ?? [:])
        }
    }

    func cusparse() throws -> CuSPARSELtMatmul {
        guard let cusparseLt else { throw CUDAError.noDevice(reason: "cuSPARSELt is not available") }
        return cusparseLt
    }
}
