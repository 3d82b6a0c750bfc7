import CCUDA
import SlopeCore

/// When the skinny 2:4 GEMM (KernelSources.skinnySparse) can take a product, and how it splits the tokens.
public enum SkinnySparseGEMM {
    /// Which kernel runs: `mma` (sparse tensor cores, KernelSources.skinnySparseTensorCore, where the width is a
    /// multiple of 128; the staged kernel elsewhere; the default: 1.1–1.7x the staged one at 1 token and 2–4x at 4–8
    /// on an H100), `staged` (x copied into shared memory once per block, 512 threads) or `plain` (every warp reads x
    /// from L2): `SLOPE_SKINNY_KERNEL`, for same-run comparisons.
    public enum Kernel: String, Sendable, CaseIterable {
        case staged, plain, mma

        var name: String {
            switch self {
            case .staged: return "skinny_24_matmul_staged"
            case .plain: return "skinny_24_matmul"
            case .mma: return "skinny_24_mma"
            }
        }
        var family: KernelFamily { self == .mma ? .skinnySparseTensorCore : .skinnySparse }
        var threads: Int { self == .staged ? 512 : 256 }

        /// The kernel that runs for rows of `columns` (the tensor-core one needs whole 128-column super-tiles; slope
        /// runs on sm_80 and later, which all have sparse tensor cores).
        func effective(columns: Int) -> Kernel { self == .mma && columns % 128 != 0 ? .staged : self }
    }

    /// The tensor-core kernel's block: 16 output rows, their k split over `warps` warps — as many as make
    /// `warpsPerMultiprocessor` warps per SM over the grid (4 to `maximumWarps`, no more than there are 128-column
    /// super-tiles, nor than 48 KiB of partial sums hold) — and its shared memory for the warps' partial sums.
    static func tensorCoreLaunch(tokens: Int, rows: Int, columns: Int, multiprocessors: Int,
                                 warpsPerMultiprocessor: Int = defaultWarpsPerMultiprocessor, maximumWarps: Int = 32) -> (grid: Int, warps: Int, sharedBytes: Int) {
        let blocks = max((rows + 15) / 16, 1)
        let partialBytes = 16 * 8 * ((tokens + 7) / 8) * 4
        let wanted = (warpsPerMultiprocessor * max(multiprocessors, 1) + blocks - 1) / blocks
        let warps = max(1, min(maximumWarps, (48 << 10) / partialBytes, max(4, wanted), columns / 128))
        return (blocks, warps, warps * partialBytes)
    }

    /// Warps per SM the tensor-core kernel's grid aims at (`SLOPE_SKINNY_WARPS`). Measured on an H100 (2026-12-07,
    /// same lease): aiming at 32 gave the 8192-row products 9 warps a block instead of 5 and made them 40% slower
    /// (1×8192×2048: 13.5 against 9.6 µs), while 2048-row ones are held to 16 by the kernel's 123 registers either way.
    static let defaultWarpsPerMultiprocessor = 16

    /// The low-rank epilogue's launch: 64 outputs a block, the rank split over 8 warps.
    static func epilogueGrid(outFeatures: Int) -> (Int, Int, Int) { (max((outFeatures + 63) / 64, 1), 1, 1) }
    static let epilogueThreads = 256

    /// Tokens per launch at most (`SKINNY_TOKENS` in the kernel: one register accumulator each).
    static let tokensPerLaunch = 8
    /// Shared memory the staged kernel gives x at most: wider rows take fewer tokens per launch.
    static let stagedBytes = 96 << 10
    /// The most tokens the route is offered for: beyond a few launches each re-reading the weights, cuSPARSELt's
    /// tensor cores or the dense GEMM win.
    static let maximumTokens = 32

    /// Tokens one launch of `kernel` takes for rows of `columns` elements of `elementBytes`.
    static func tokensPerLaunch(_ kernel: Kernel, columns: Int, elementBytes: Int) -> Int {
        switch kernel {
        case .plain: return tokensPerLaunch
        case .mma: return maximumTokens
        case .staged: return max(1, min(tokensPerLaunch, stagedBytes / max(columns * elementBytes, 1)))
        }
    }

    /// The staged kernel's blocks: 16 rows (warps) each, at most four blocks per SM (grid-stride beyond, so each
    /// block's copy of x serves more rows).
    static func stagedGrid(rows: Int, multiprocessors: Int) -> (Int, Int, Int) {
        (max(1, min((rows + 15) / 16, 4 * multiprocessors)), 1, 1)
    }

    /// Whether the kernel computes `X·Wᵀ` for `tokens` rows of X against a matrix of `pattern`, `columns` wide, in
    /// `dtype`: 2:4 (its slot indices packed 2 bits each), whole 16-column chunks, 16-bit elements.
    static func applies(tokens: Int, pattern: NMPattern, columns: Int, dtype: DType) -> Bool {
        pattern == .twoFour && (1...maximumTokens).contains(tokens) && columns > 0 && columns % 16 == 0
            && (dtype == .bfloat16 || dtype == .float16)
    }

    /// The launches for `tokens` rows: (first row, rows) in order, `perLaunch` at most each.
    static func launches(tokens: Int, perLaunch: Int = tokensPerLaunch) -> [(first: Int, count: Int)] {
        stride(from: 0, to: tokens, by: perLaunch).map { ($0, min(perLaunch, tokens - $0)) }
    }

    /// Blocks of 256 threads, one warp per output row.
    static func grid(rows: Int) -> (Int, Int, Int) { (min(max((rows + 7) / 8, 1), 65_535), 1, 1) }
}

/// When the dense skinny GEMM (`skinny_dense_matmul_staged`) can take `X·Wᵀ`, and how it is launched: as the
/// staged 2:4 kernel (x in shared memory, 16 rows a block), for few rows of X.
enum SkinnyDenseGEMM {
    static let kernel = "skinny_dense_matmul_staged"
    static let threads = 512

    /// Whether the kernel computes `X·Wᵀ` for `tokens` rows of X, `columns` wide, in `dtype`: whole 8-column chunks
    /// (16 bytes), 16-bit elements.
    static func applies(tokens: Int, columns: Int, dtype: DType) -> Bool {
        (1...SkinnySparseGEMM.maximumTokens).contains(tokens) && columns > 0 && columns % 8 == 0 && (dtype == .bfloat16 || dtype == .float16)
    }

    /// Which route runs a dense `X·Wᵀ` of few rows: `SLOPE_DENSE_GEMM` = auto (measured per shape, the default),
    /// cublaslt or skinny (wherever the kernel applies).
    enum Choice: String, Sendable {
        case auto, cublaslt, skinny
    }

    /// A decision's key: the sparse decisions' form, marked as a dense weight's (with ReLU in its own key).
    static func key(tokens: Int, outFeatures: Int, inFeatures: Int, dtype: DType, bias: Bool, relu: Bool) -> String {
        "dense-weight " + SparseGEMMDecisionStore.key(tokens: tokens, outFeatures: outFeatures, inFeatures: inFeatures, dtype: dtype.rawValue,
                                                      bias: bias ? (relu ? "bias +relu" : "bias") : (relu ? "relu" : nil))
    }
}

extension CUDABackend {
    /// `Y = X·Wᵀ (+ bias)`, ReLU'd when `relu`, by the dense skinny kernel where this call should take it (``denseSkinnyChosen``),
    /// else nil (the caller runs cuBLASLt).
    func routedSkinnyDenseGEMM(_ x: Tensor, _ w: Tensor, bias: Tensor?, relu: Bool) throws -> Tensor? {
        guard x.rank == 2, w.rank == 2, SkinnyDenseGEMM.applies(tokens: x.shape[0], columns: x.shape[1], dtype: x.dtype), w.dtype == x.dtype,
              bias.map({ $0.dtype == x.dtype }) ?? true, try denseSkinnyChosen(x, w, bias: bias, relu: relu)
        else { return nil }
        return try skinnyDenseGEMM(x, w, bias: bias, relu: relu)
    }

    /// The dense skinny kernel's product, or nil where its operands are not 16-byte aligned.
    func skinnyDenseGEMM(_ x: Tensor, _ w: Tensor, bias: Tensor?, relu: Bool) throws -> Tensor? {
        let (tokens, columns, rows) = (x.shape[0], x.shape[1], w.shape[0])
        let (xAddress, wAddress) = (try address(x, "skinnyDenseGEMM"), try address(w, "skinnyDenseGEMM"))
        guard xAddress % 16 == 0, wAddress % 16 == 0 else { return nil }
        let output = try newTensor([tokens, rows], dtype: x.dtype)
        let (outputAddress, biasAddress) = (try address(output, "skinnyDenseGEMM"), try address(ifAny: bias, "skinnyDenseGEMM"))
        let elementBytes = x.dtype.byteSize
        let perLaunch = SkinnySparseGEMM.tokensPerLaunch(.staged, columns: columns, elementBytes: elementBytes)
        for launch in SkinnySparseGEMM.launches(tokens: tokens, perLaunch: perLaunch) {
            try self.launch(.skinnySparse, SkinnyDenseGEMM.kernel, dtype: x.dtype,
                            grid: SkinnySparseGEMM.stagedGrid(rows: rows, multiprocessors: cudaDevice.multiprocessorCount),
                            block: (SkinnyDenseGEMM.threads, 1, 1), sharedBytes: launch.count * columns * elementBytes, [
                .pointer(xAddress + UInt64(launch.first * columns * elementBytes)), .pointer(wAddress), .optionalPointer(biasAddress),
                .pointer(outputAddress + UInt64(launch.first * rows * elementBytes)), .int64(Int64(launch.count)), .int64(Int64(rows)),
                .int64(Int64(columns)), .int32(relu ? 1 : 0),
            ])
        }
        return output
    }

    /// Whether the dense skinny kernel runs this shape: forced by `SLOPE_DENSE_GEMM`, remembered, or measured now
    /// against cuBLASLt (its output checked against cuBLASLt's first: a kernel that disagrees is recorded as failed,
    /// never chosen). Never measured while a decode step is being recorded: cuBLASLt runs an unmeasured shape there.
    private func denseSkinnyChosen(_ x: Tensor, _ w: Tensor, bias: Tensor?, relu: Bool) throws -> Bool {
        switch denseGEMMChoice {
        case .cublaslt: return false
        case .skinny: return true
        case .auto: break
        }
        let key = SkinnyDenseGEMM.key(tokens: x.shape[0], outFeatures: w.shape[0], inFeatures: x.shape[1], dtype: x.dtype, bias: bias != nil, relu: relu)
        if let known = decisions.decision(for: key) { return known.route == .skinny }
        guard recording.withLock({ $0 == nil }) else { return false }
        let shape = try OperandChecks.gemm(x, w, transposeA: false, transposeB: true, c: nil, bias: bias)
        func cublas() throws -> Tensor {
            let product = try cublasGEMM(x, w, shape, transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: bias)
            return relu ? try activation(product, .relu) : product
        }
        var timings = ["dense": try medianMilliseconds(repeats: 10, warmup: 2) { _ = try cublas() }]
        var failures: [String: String] = [:]
        if let output = try skinnyDenseGEMM(x, w, bias: bias, relu: relu) {
            let (agreed, difference) = try agrees(output, cublas())
            if agreed {
                timings["skinny"] = try medianMilliseconds(repeats: 10, warmup: 2) { _ = try skinnyDenseGEMM(x, w, bias: bias, relu: relu) }
            } else {
                failures["skinny"] = "disagreed with cuBLASLt (max |difference| \(difference))"
            }
        }
        let best = timings.min { $0.value < $1.value }!.key
        decisions.record(
            SparseGEMMDecision(route: best == "skinny" ? .skinny : .dense, milliseconds: timings, failures: failures.isEmpty ? nil : failures), for: key)
        return best == "skinny"
    }

    /// The skinny kernel's operands for `s`: its values' address and its slot indices packed 2 bits each (packing them
    /// now if they are not; they stay packed, a quarter of the bytes), or nil where the kernel cannot read them.
    private func skinnyOperands(_ x: Tensor, _ s: CompressedMatrix) throws -> (x: CUdeviceptr, values: CUdeviceptr, indices: CUdeviceptr)? {
        let tokens = x.count / max(s.columns, 1)
        guard SkinnySparseGEMM.applies(tokens: tokens, pattern: s.pattern, columns: s.columns, dtype: x.dtype), s.values.dtype == x.dtype else { return nil }
        try compactSlotIndices(s)
        let indices = try slotIndices(s.indices, "skinnySparseGEMM")
        guard case .pointer(let packed) = indices.pointer, case .int32(2) = indices.bits else { return nil }
        let operands = (x: try address(x, "skinnySparseGEMM"), values: try address(s.values, "skinnySparseGEMM"), indices: packed)
        guard operands.x % 16 == 0, operands.values % 16 == 0, operands.indices % 2 == 0 else { return nil }
        return operands
    }

    /// Whether the skinny kernel can take `X·Sᵀ` here.
    func skinnyApplies(_ x: Tensor, _ s: CompressedMatrix) -> Bool {
        SkinnySparseGEMM.applies(tokens: x.count / max(s.columns, 1), pattern: s.pattern, columns: s.columns, dtype: x.dtype)
            && s.values.dtype == x.dtype
    }

    /// `Y = X·Sᵀ (+ bias)`, or added into `target`, by the skinny 2:4 kernel: nil where it cannot take the operands.
    func skinnySparseGEMM(_ x: Tensor, _ s: CompressedMatrix, bias: Tensor?, accumulateInto target: Tensor? = nil) throws -> Tensor? {
        guard let operands = try skinnyOperands(x, s) else { return nil }
        let tokens = x.count / s.columns
        let output = try target ?? newTensor(Array(x.shape.dropLast()) + [s.rows], dtype: x.dtype)
        if target != nil { try touch(output) }
        let (outputAddress, biasAddress) = (try address(output, "skinnySparseGEMM"), try address(ifAny: bias, "skinnySparseGEMM"))
        let elementBytes = UInt64(x.dtype.byteSize)
        for launch in skinnyLaunches(tokens: tokens, columns: s.columns, dtype: x.dtype) {
            try launchSkinny(tokens: launch.count, rows: s.rows, columns: s.columns, dtype: x.dtype, [
                .pointer(operands.x + UInt64(launch.first * s.columns) * elementBytes), .pointer(operands.values), .pointer(operands.indices),
                .optionalPointer(biasAddress), .pointer(outputAddress + UInt64(launch.first * s.rows) * elementBytes), .optionalPointer(nil),
                .int64(Int64(launch.count)), .int64(Int64(s.rows)), .int64(Int64(s.columns)), .int64(0), .int32(target == nil ? 0 : 1),
            ])
        }
        return output
    }

    /// The merged layer `Y = X·Wᵀ + scale·(X·L)·R + b` by the skinny kernel over all of `[W; Lᵀ]` at once (float sums,
    /// the weights read once), then one epilogue pass for the low-rank product and the bias: nil where it cannot.
    func skinnyMergedGEMM(_ x: Tensor, merged: CompressedMatrix, outFeatures: Int, up: Tensor, scale: Float, bias: Tensor?) throws -> Tensor? {
        guard let operands = try skinnyOperands(x, merged) else { return nil }
        let tokens = x.count / merged.columns
        let sums = try newTensor([tokens, merged.rows], dtype: .float32)
        let sumsAddress = try address(sums, "skinnyMergedGEMM")
        for launch in skinnyLaunches(tokens: tokens, columns: merged.columns, dtype: x.dtype) {
            try launchSkinny(tokens: launch.count, rows: merged.rows, columns: merged.columns, dtype: x.dtype, [
                .pointer(operands.x + UInt64(launch.first * merged.columns * x.dtype.byteSize)), .pointer(operands.values),
                .pointer(operands.indices), .optionalPointer(nil), .optionalPointer(nil),
                .pointer(sumsAddress + UInt64(launch.first * merged.rows * 4)),
                .int64(Int64(launch.count)), .int64(Int64(merged.rows)), .int64(Int64(merged.columns)), .int64(Int64(merged.rows)), .int32(0),
            ])
        }
        let output = try newTensor([tokens, outFeatures], dtype: x.dtype)
        try launch(.skinnySparse, "skinny_low_rank_epilogue", dtype: x.dtype, grid: SkinnySparseGEMM.epilogueGrid(outFeatures: outFeatures),
                   block: (SkinnySparseGEMM.epilogueThreads, 1, 1), sharedBytes: 0, [
            .pointer(sumsAddress), .pointer(address(up, "skinnyMergedGEMM")), .optionalPointer(try address(ifAny: bias, "skinnyMergedGEMM")),
            .pointer(address(output, "skinnyMergedGEMM")), .int64(Int64(tokens)), .int64(Int64(outFeatures)),
            .int64(Int64(merged.rows - outFeatures)), .float(scale),
        ])
        return output
    }

    /// The tensor-core skinny kernel as this device builds and launches it (bf16): registers, spilled bytes, the widest
    /// block its registers allow, and the warps a block gets at one token of a 2048×8192 product (OPT-1.3B's fc2).
    public func skinnyTensorCoreDescription() throws -> String {
        let kernel = SkinnySparseGEMM.Kernel.mma
        let resources = try kernelResources(kernel.family, kernel.name, dtype: .bfloat16)
        let threads = try maximumThreadsPerBlock(kernel.family, kernel.name, dtype: .bfloat16)
        let shape = SkinnySparseGEMM.tensorCoreLaunch(
            tokens: 1, rows: 2048, columns: 8192, multiprocessors: cudaDevice.multiprocessorCount,
            warpsPerMultiprocessor: skinnyWarpsPerMultiprocessor, maximumWarps: min(32, threads / 32))
        return "\(kernel.name): \(resources.registers) registers" + (resources.spillBytes > 0 ? ", \(resources.spillBytes) B spilled" : "")
            + ", blocks up to \(threads) threads; 1×2048×8192: \(shape.grid) blocks of \(shape.warps) warps (aiming at \(skinnyWarpsPerMultiprocessor) an SM)"
    }

    /// The skinny kernel that runs for rows `columns` wide here (``skinnyKernel`` where it applies).
    private func skinnyKernel(columns: Int) -> SkinnySparseGEMM.Kernel {
        skinnyKernel.effective(columns: columns)
    }

    /// The skinny kernel's launches for `tokens` rows of x, `columns` wide.
    private func skinnyLaunches(tokens: Int, columns: Int, dtype: DType) -> [(first: Int, count: Int)] {
        SkinnySparseGEMM.launches(
            tokens: tokens, perLaunch: SkinnySparseGEMM.tokensPerLaunch(skinnyKernel(columns: columns), columns: columns, elementBytes: dtype.byteSize))
    }

    /// One launch of the skinny kernel over `rows` output rows; the staged one gets `tokens` rows of x in shared
    /// memory, the tensor-core one its warps' partial sums.
    private func launchSkinny(tokens: Int, rows: Int, columns: Int, dtype: DType, _ arguments: [KernelArgument]) throws {
        let kernel = skinnyKernel(columns: columns)
        switch kernel {
        case .mma:
            let shape = SkinnySparseGEMM.tensorCoreLaunch(
                tokens: tokens, rows: rows, columns: columns, multiprocessors: cudaDevice.multiprocessorCount,
                warpsPerMultiprocessor: skinnyWarpsPerMultiprocessor,
                maximumWarps: min(32, try maximumThreadsPerBlock(kernel.family, kernel.name, dtype: dtype) / 32))
            try launch(kernel.family, kernel.name, dtype: dtype, grid: (shape.grid, 1, 1), block: (32 * shape.warps, 1, 1),
                       sharedBytes: shape.sharedBytes, arguments)
        case .staged, .plain:
            let grid = kernel == .staged
                ? SkinnySparseGEMM.stagedGrid(rows: rows, multiprocessors: cudaDevice.multiprocessorCount) : SkinnySparseGEMM.grid(rows: rows)
            try launch(kernel.family, kernel.name, dtype: dtype, grid: grid, block: (kernel.threads, 1, 1),
                       sharedBytes: kernel == .staged ? tokens * columns * dtype.byteSize : 0, arguments)
        }
    }

    /// Whether a route's output agrees with a reference's (the dense GEMM's, the folded merged form's) to within what
    /// rounding allows: max |a − b| ≤ 2% of max |b| (+ a little for all-zero outputs). A kernel that read its operands
    /// wrongly is off by the outputs' own size. Measured routes are checked so before they are chosen: a route whose
    /// kernel misbehaves on some device is recorded as failed rather than used.
    func agrees(_ candidate: Tensor, _ reference: Tensor) throws -> (Bool, Float) {
        let scale = try floats(maxAbsolute(reference))[0]
        let difference = try floats(maxAbsolute(subtract(candidate, reference)))[0]
        return (difference <= 0.02 * scale + 1e-3, difference)
    }
}
