import CCUDA
import SlopeCore

/// How ``CUDABackend`` computes attention.
public enum AttentionRoute: String, Sendable, CaseIterable {
    /// cuDNN's fused flash-attention engines through its graph API (Hopper: wgmma and TMA kernels, the fastest
    /// measured), where cuDNN 9 loads and has an engine for the shape: bf16/fp16, head dimension a multiple of 8 up
    /// to 256, equal query and key lengths when causal.
    case cudnn
    /// Fused tensor-core kernels (bf16/fp16, FlashAttention-2's algorithm), scores never leaving the chip:
    /// forward and backward at head dimensions 64, 80, 96, 128 and 256.
    case fused
    /// Scores and probabilities of one batch element at a time through cuBLASLt (tensor cores); backward
    /// recomputes them from the saved log-sum-exp, so nothing [T, T] is kept between passes.
    case gemm
    /// CUDA-core kernels with an online softmax: no [T, T] buffer at all, slower.
    case flash
}

extension AttentionRoute {
    /// The forced route (a forced `cudnn` falls back to the automatic choice without it where cuDNN has no plan,
    /// a forced `fused` or `flash` to `gemm` where its kernels do not apply), else cuDNN where it has a plan, else
    /// fused where it applies, else GEMMs unless one batch element's float32 scores would pass 4 GiB (long
    /// sequences, where the flash kernels need no buffer at all). Padded sequences (an encoder's key lengths) and
    /// dropped probabilities (BERT's training) take the fused kernels or the GEMM route, which mask and drop them as
    /// the CPU does; the flash and cuDNN kernels do not (cuDNN's dropout draws its own mask). `fusable`: the fused
    /// kernels apply; `cudnnPlanned`: cuDNN is wanted and has a plan (asked only where it could run).
    static func choose(for s: AttentionShape, forced: AttentionRoute?, fusable: Bool, cudnnPlanned: () -> Bool) -> AttentionRoute {
        if s.keyLengths != nil || (s.dropout?.probability ?? 0) > 0 { return fusable && forced != .gemm ? .fused : .gemm }
        if cudnnPlanned() { return .cudnn }
        let scoreBytes = s.queryHeads * s.queryLength * s.keyLength * 4
        let gemmOrFlash: AttentionRoute = scoreBytes <= 4 << 30 ? .gemm : .flash
        let flashable = KernelSources.attentionHeadDimensions.contains(s.headDimension)
        switch forced {
        case .gemm?: return .gemm
        case .cudnn?: return fusable ? .fused : gemmOrFlash
        case .flash?: return flashable ? .flash : .gemm
        case .fused?: return fusable ? .fused : .gemm
        case nil: return fusable ? .fused : gemmOrFlash
        }
    }
}

extension CUDABackend {
    public func rmsNorm(_ x: Tensor, adding residual: Tensor?, weight: Tensor, epsilon: Float) throws -> RMSNormOutput {
        let (rows, columns) = try OperandChecks.rmsNorm(x, weight: weight)
        let operation = "rmsNorm"
        try OperandChecks.residual(residual, like: x, operation)
        if let residual, !fusions.contains(.residualNorm) {
            let sum = try add(x, residual)
            let output = try rmsNorm(sum, adding: nil, weight: weight, epsilon: epsilon)
            return RMSNormOutput(output: output.output, reciprocalRMS: output.reciprocalRMS, sum: sum)
        }
        let out = try newTensor(x.shape, dtype: x.dtype)
        let sum = try residual.map { _ in try newTensor(x.shape, dtype: x.dtype) }
        let rrms = try newTensor([rows], dtype: .float32)
        try launch(.normalization, "rmsnorm_forward", dtype: x.dtype, grid: (min(rows, 65_535), 1, 1), block: normBlock(columns: columns, elementBytes: x.dtype.byteSize), [
            .pointer(address(x, operation)), .optionalPointer(address(ifAny: residual, operation)), .optionalPointer(address(ifAny: sum, operation)),
            .pointer(address(weight, operation)), .pointer(address(out, operation)), .pointer(address(rrms, operation)),
            .int64(Int64(rows)), .int64(Int64(columns)), .float(epsilon),
        ])
        return RMSNormOutput(output: out, reciprocalRMS: rrms, sum: sum)
    }

    public func rmsNormBackward(
        _ dy: Tensor, input x: Tensor, weight: Tensor, saved: RMSNormOutput, addingGradient residualGradient: Tensor?
    ) throws -> RMSNormGradients {
        let (rows, columns) = try OperandChecks.rmsNormBackward(dy, input: x, weight: weight, saved: saved)
        let operation = "rmsNormBackward"
        try OperandChecks.residual(residualGradient, like: x, operation)
        if let residualGradient, !fusions.contains(.residualNorm) {
            let gradients = try rmsNormBackward(dy, input: x, weight: weight, saved: saved, addingGradient: nil)
            try accumulate(residualGradient, into: gradients.input, alpha: 1)
            return gradients
        }
        let dx = try newTensor(x.shape, dtype: x.dtype)
        let dweight = try newTensor([columns], dtype: x.dtype)
        try launch(.normalization, "rmsnorm_backward_input", dtype: x.dtype, grid: (min(rows, 65_535), 1, 1), block: normBlock(columns: columns, elementBytes: x.dtype.byteSize), [
            .pointer(address(dy, operation)), .pointer(address(x, operation)), .pointer(address(weight, operation)),
            .pointer(address(saved.reciprocalRMS, operation)), .optionalPointer(address(ifAny: residualGradient, operation)),
            .pointer(address(dx, operation)), .int64(Int64(rows)), .int64(Int64(columns)),
        ])
        let chunks = Self.columnSumChunks(rows: rows)
        let partial = try newTensor([chunks.count, columns], dtype: .float32)
        try launch(.normalization, "rmsnorm_backward_weight_partial", dtype: x.dtype, grid: ((columns + 31) / 32, chunks.count, 1), block: (32, 8, 1), [
            .pointer(address(dy, operation)), .pointer(address(x, operation)), .pointer(address(saved.reciprocalRMS, operation)),
            .pointer(address(partial, operation)), .int64(Int64(rows)), .int64(Int64(columns)), .int64(Int64(chunks.rows)),
        ])
        try sumPartials(partial, into: dweight)
        return RMSNormGradients(input: dx, weight: dweight)
    }

    public func rotaryEmbedding(_ x: Tensor, layout: RotaryLayout, inverse: Bool) throws -> Tensor {
        let heads = try OperandChecks.rotaryEmbedding(x, layout: layout)
        let (rows, _) = try x.asMatrix(operation: "rotaryEmbedding")
        let out = try newTensor(x.shape, dtype: x.dtype)
        let table = try rotaryTable(headDimension: layout.headDimension, base: layout.base,
                                    positions: layout.positions.map { ($0.max() ?? 0) + 1 } ?? layout.positionOffset + min(rows, layout.sequenceLength),
                                    module: x.dtype)
        let positions = try layout.positions.map { try indices($0.map(Int32.init)) }
        try launch(.attention, "rope", dtype: x.dtype, grid: elementwiseGrid(rows * heads * layout.headDimension / 2), [
            .pointer(address(x, "rotaryEmbedding")), .pointer(address(out, "rotaryEmbedding")), .pointer(address(table, "rotaryEmbedding")),
            .int64(Int64(rows)), .int64(Int64(heads)), .int64(Int64(layout.headDimension)), .int64(Int64(layout.sequenceLength)),
            .int64(Int64(layout.positionOffset)), .float(inverse ? -1 : 1), .optionalPointer(address(ifAny: positions, "rotaryEmbedding")),
        ])
        return out
    }

    public func rotaryEmbedding(_ x: Tensor, positions: Tensor, headDimension d: Int, base: Float, positionLimit: Int) throws -> Tensor {
        let heads = try OperandChecks.rotaryEmbedding(x, positions: positions, headDimension: d, base: base, positionLimit: positionLimit)
        let rows = x.shape[0]
        let out = try newTensor(x.shape, dtype: x.dtype)
        // The table covers the limit up front: grown later, a recorded step would read the old one.
        let table = try rotaryTable(headDimension: d, base: base, positions: positionLimit, module: x.dtype)
        try launch(.attention, "rope", dtype: x.dtype, grid: elementwiseGrid(rows * heads * d / 2), [
            .pointer(address(x, "rotaryEmbedding")), .pointer(address(out, "rotaryEmbedding")), .pointer(address(table, "rotaryEmbedding")),
            .int64(Int64(rows)), .int64(Int64(heads)), .int64(Int64(d)), .int64(Int64(max(rows, 1))), .int64(0), .float(1),
            .pointer(address(positions, "rotaryEmbedding")),
        ])
        return out
    }

    /// RoPE's rotations for positions [0, positions) at this head dimension and base, computed once (in double, by
    /// `rope_table`, from the attention module already loaded for `module`'s dtype) and kept; a longer sequence or
    /// a later decoding position grows the table to the next multiple of 4096 positions.
    func rotaryTable(headDimension d: Int, base: Float, positions: Int, module: DType) throws -> Tensor {
        let key = RotaryTableKey(headDimension: d, baseBits: base.bitPattern)
        if let cached = rotaryTables.withLock({ $0[key] }), cached.positions >= positions { return cached.table }
        let covered = (positions + 4095) / 4096 * 4096
        let table = try newTensor([covered, d / 2, 2], dtype: .float32)
        try launch(.attention, "rope_table", dtype: module, grid: elementwiseGrid(covered * d / 2), [
            .pointer(address(table, "rotaryEmbedding")), .int64(Int64(covered)), .int64(Int64(d)), .float(base),
        ])
        rotaryTables.withLock { $0[key] = (covered, table) }
        return table
    }

    /// Packed rows run on the fused kernels only (the others index sequences by `b·length`).
    public func takesPackedAttention(_ shape: AttentionShape, dtype: DType) -> Bool {
        var packed = shape
        packed.packedRows = packed.packedRows ?? 0
        return (try? route(for: packed, dtype: dtype)) == .fused && (try? route(for: packed, dtype: dtype, backward: true)) == .fused
    }

    public func attention(query: Tensor, key: Tensor, value: Tensor, shape s: AttentionShape) throws -> AttentionOutput {
        try OperandChecks.attention(query: query, key: key, value: value, shape: s)
        switch try route(for: s, dtype: query.dtype) {
        case .cudnn: return try cudnnAttention(query: query, key: key, value: value, shape: s)
        case .fused: return try fusedAttention(query: query, key: key, value: value, shape: s)
        case .gemm: return try gemmAttention(query: query, key: key, value: value, shape: s)
        case .flash: return try flashAttention(query: query, key: key, value: value, shape: s)
        }
    }

    public func attentionBackward(
        _ dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor, saved: AttentionOutput, shape s: AttentionShape
    ) throws -> AttentionGradients {
        try OperandChecks.attentionBackward(dOutput, query: query, key: key, value: value, saved: saved, shape: s)
        let route = try route(for: s, dtype: query.dtype, backward: true)
        if route == .cudnn {  // computes its own δ
            return try cudnnAttentionBackward(dOutput, query: query, key: key, value: value, saved: saved, shape: s)
        }
        // δ = rowsum(dO ⊙ O), FlashAttention-2's D, used by every route.
        let rows = s.queryRows
        let delta = try newTensor([rows, s.queryHeads], dtype: .float32)
        let operation = "attentionBackward"
        let deltaArguments: [KernelArgument] = [
            .pointer(try address(dOutput, operation)), .pointer(try address(saved.output, operation)), .pointer(try address(delta, operation)),
        ]
        if tensorCoreBackward(s, dtype: query.dtype) != nil {
            let lanes = TensorCoreAttentionKernels.deltaLanes(headDimension: s.headDimension)
            try launch(.attentionTensorCore, "attention_delta_tc_d\(s.headDimension)", dtype: query.dtype,
                       grid: elementwiseGrid(rows * s.queryHeads * lanes), deltaArguments + [.int64(Int64(rows * s.queryHeads))])
        } else {
            try launch(.attention, "attention_delta", dtype: query.dtype, grid: elementwiseGrid(rows * s.queryHeads),
                       deltaArguments + [.int64(Int64(rows)), .int64(Int64(s.queryHeads)), .int64(Int64(s.headDimension))])
        }
        switch route {
        case .cudnn, .fused: return try fusedAttentionBackward(dOutput, query: query, key: key, value: value, saved: saved, delta: delta, shape: s)
        case .gemm: return try gemmAttentionBackward(dOutput, query: query, key: key, value: value, saved: saved, delta: delta, shape: s)
        case .flash: return try flashAttentionBackward(dOutput, query: query, key: key, value: value, saved: saved, delta: delta, shape: s)
        }
    }

    /// The fused forward kernel this call would run (bf16/fp16 at an instantiated head dimension whose kernel fits
    /// the device's shared memory), or nil.
    func tensorCoreForward(_ s: AttentionShape, dtype: DType) -> TensorCoreAttentionKernels.Forward? {
        guard dtype == .bfloat16 || dtype == .float16 else { return nil }
        return TensorCoreAttentionKernels.forward(
            headDimension: s.headDimension, requested: attentionVariant.forward, maxSharedBytes: cudaDevice.maxSharedBytesPerBlock)
    }

    func tensorCoreBackward(_ s: AttentionShape, dtype: DType) -> TensorCoreAttentionKernels.Backward? {
        guard dtype == .bfloat16 || dtype == .float16 else { return nil }
        return TensorCoreAttentionKernels.backward(
            headDimension: s.headDimension, requested: attentionVariant.backward, maxSharedBytes: cudaDevice.maxSharedBytesPerBlock)
    }

    /// Head dimensions the fused route has kernels for (bf16 and fp16).
    public static var fusedAttentionHeadDimensions: [Int] { TensorCoreAttentionKernels.headDimensions }

    /// How many fused kernel variants exist at a head dimension (`attentionVariant` indexes them).
    public static func attentionVariantCounts(headDimension: Int) -> (forward: Int, backward: Int) {
        (TensorCoreAttentionKernels.forwardVariants[headDimension]?.count ?? 0, TensorCoreAttentionKernels.backwardVariants[headDimension]?.count ?? 0)
    }

    /// What the fused route runs at this shape with the current `attentionVariant`: each kernel's tiles, registers
    /// per thread and spilled bytes per thread (compiling the kernels if needed); nil where the route does not apply.
    public func fusedAttentionDescription(_ s: AttentionShape, dtype: DType) throws -> (forward: String, backward: String)? {
        guard let forward = tensorCoreForward(s, dtype: dtype), let backward = tensorCoreBackward(s, dtype: dtype) else { return nil }
        let f = try kernelResources(.attentionTensorCore, forward.name, dtype: dtype)
        let b = try kernelResources(.attentionTensorCore, backward.name, dtype: dtype)
        return ("\(forward.label), \(f.registers) regs" + (f.spillBytes > 0 ? ", \(f.spillBytes) B spilled" : ""),
                "\(backward.label), \(b.registers) regs" + (b.spillBytes > 0 ? ", \(b.spillBytes) B spilled" : ""))
    }

    /// The route this call takes (``AttentionRoute/choose(for:forced:fusable:cudnnPlanned:)`` with this device's
    /// kernels and cuDNN plans).
    func route(for s: AttentionShape, dtype: DType, backward: Bool = false) throws -> AttentionRoute {
        let fusable = (backward ? tensorCoreBackward(s, dtype: dtype) != nil : tensorCoreForward(s, dtype: dtype) != nil)
            && s.batch <= 65_535 && s.keyValueHeads <= 65_535 && s.queryHeads <= 65_535
        if s.packedRows != nil, !fusable || attentionRoute == .gemm {
            throw TensorError.invalidArgument(
                operation: backward ? "attentionBackward" : "attention",
                reason: "packed rows take the fused kernels only (bf16/fp16 at their head dimensions); pad the rows instead (takesPackedAttention)")
        }
        return AttentionRoute.choose(
            for: s, forced: attentionRoute, fusable: fusable,
            cudnnPlanned: { (attentionRoute == .cudnn || (attentionRoute == nil && Self.cudnnAttentionByDefault))
                && cudnnAttentionPlan(s, dtype: dtype, backward: backward) != nil })
    }

    /// dK and dV straight from the kernel; dQ accumulated in float32 by atomics across key blocks, then rounded.
    func fusedAttentionBackward(
        _ dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor, saved: AttentionOutput, delta: Tensor, shape s: AttentionShape
    ) throws -> AttentionGradients {
        guard let kernel = tensorCoreBackward(s, dtype: query.dtype) else {
            throw TensorError.invalidArgument(operation: "attentionBackward", reason: "no fused kernel for head dimension \(s.headDimension)")
        }
        let operation = "attentionBackward"
        // (Rows no packed sequence owns are never written: they start at zero.)
        let (dk, dv) = s.packedRows == nil
            ? (try newTensor(key.shape, dtype: key.dtype), try newTensor(value.shape, dtype: value.dtype))
            : (try zeros(key.shape, dtype: key.dtype), try zeros(value.shape, dtype: value.dtype))
        let dq32 = try zeros(query.shape, dtype: .float32)
        try launch(
            .attentionTensorCore, kernel.name, dtype: query.dtype,
            grid: ((s.keyLength + kernel.keysPerBlock - 1) / kernel.keysPerBlock, s.keyValueHeads, s.batch), block: (kernel.threads, 1, 1),
            sharedBytes: kernel.sharedBytes, [
                .pointer(try address(query, operation)), .pointer(try address(key, operation)), .pointer(try address(value, operation)),
                .pointer(try address(dOutput, operation)), .pointer(try address(saved.logSumExp, operation)),
                .pointer(try address(delta, operation)), .pointer(address(dq32, operation)), .pointer(address(dk, operation)),
                .pointer(address(dv, operation)),
            ] + Self.sizeArguments(s) + [.optionalPointer(try keyLengths(s, operation))] + Self.dropoutArguments(s.dropout)
                + [.optionalPointer(try rowStarts(s, operation))])
        return AttentionGradients(query: try cast(dq32, to: query.dtype), key: dk, value: dv)
    }

    func fusedAttention(query: Tensor, key: Tensor, value: Tensor, shape s: AttentionShape) throws -> AttentionOutput {
        guard let kernel = tensorCoreForward(s, dtype: query.dtype) else {
            throw TensorError.invalidArgument(operation: "attention", reason: "no fused kernel for head dimension \(s.headDimension)")
        }
        // (Rows no packed sequence owns are never written: they start at zero.)
        let out = s.packedRows == nil ? try newTensor(query.shape, dtype: query.dtype) : try zeros(query.shape, dtype: query.dtype)
        let lse = s.packedRows == nil
            ? try newTensor([s.queryRows, s.queryHeads], dtype: .float32) : try zeros([s.queryRows, s.queryHeads], dtype: .float32)
        try launch(
            .attentionTensorCore, kernel.name, dtype: query.dtype,
            grid: ((s.queryLength + kernel.rowsPerBlock - 1) / kernel.rowsPerBlock, s.queryHeads, s.batch), block: (kernel.threads, 1, 1),
            sharedBytes: kernel.sharedBytes, [
                .pointer(address(query, "attention")), .pointer(address(key, "attention")), .pointer(address(value, "attention")),
                .pointer(address(out, "attention")), .pointer(address(lse, "attention")),
            ] + Self.sizeArguments(s) + [.optionalPointer(try keyLengths(s, "attention"))] + Self.dropoutArguments(s.dropout)
                + [.optionalPointer(try rowStarts(s, "attention"))])
        return AttentionOutput(output: out, logSumExp: lse)
    }

    /// The fused kernels' per-batch key lengths of a padded batch (int32 on the device), or nil (NULL) when none is
    /// padded.
    private func keyLengths(_ s: AttentionShape, _ operation: String) throws -> CUdeviceptr? {
        try s.keyLengths.map { try address(indices($0.map(Int32.init)), operation) }
    }

    /// The fused kernels' first row of each packed sequence (int32 on the device), or nil (NULL) for the
    /// `[batch·length]` layout.
    private func rowStarts(_ s: AttentionShape, _ operation: String) throws -> CUdeviceptr? {
        guard s.packedRows != nil else { return nil }
        return try address(indices(s.rowLayout().map { Int32($0.queryStart) }), operation)
    }

    func flashAttention(query: Tensor, key: Tensor, value: Tensor, shape s: AttentionShape) throws -> AttentionOutput {
        let kernel = try Self.attentionKernel("attention_forward", s)
        let out = try newTensor(query.shape, dtype: query.dtype)
        let lse = try newTensor([s.batch * s.queryLength, s.queryHeads], dtype: .float32)
        try launch(.attention, kernel, dtype: query.dtype, grid: ((s.queryLength + 63) / 64, s.queryHeads, s.batch), block: (64, 1, 1), [
            .pointer(address(query, "attention")), .pointer(address(key, "attention")), .pointer(address(value, "attention")),
            .pointer(address(out, "attention")), .pointer(address(lse, "attention")),
        ] + Self.sizeArguments(s))
        return AttentionOutput(output: out, logSumExp: lse)
    }

    func flashAttentionBackward(
        _ dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor, saved: AttentionOutput, delta: Tensor, shape s: AttentionShape
    ) throws -> AttentionGradients {
        let operation = "attentionBackward"
        let dq = try newTensor(query.shape, dtype: query.dtype)
        let dk = try newTensor(key.shape, dtype: key.dtype)
        let dv = try newTensor(value.shape, dtype: value.dtype)
        let inputs: [KernelArgument] = [
            .pointer(try address(query, operation)), .pointer(try address(key, operation)), .pointer(try address(value, operation)),
            .pointer(try address(dOutput, operation)), .pointer(try address(saved.logSumExp, operation)),
            .pointer(try address(delta, operation)),
        ]
        try launch(
            .attention, Self.attentionKernel("attention_backward_query", s), dtype: query.dtype,
            grid: ((s.queryLength + 63) / 64, s.queryHeads, s.batch), block: (64, 1, 1),
            inputs + [.pointer(address(dq, operation))] + Self.sizeArguments(s))
        try launch(
            .attention, Self.attentionKernel("attention_backward_key_value", s), dtype: query.dtype,
            grid: ((s.keyLength + 63) / 64, s.keyValueHeads, s.batch), block: (64, 1, 1),
            inputs + [.pointer(address(dk, operation)), .pointer(address(dv, operation))] + Self.sizeArguments(s))
        return AttentionGradients(query: dq, key: dk, value: dv)
    }

    /// The kernel instantiated for the head dimension, or an error listing the supported ones.
    static func attentionKernel(_ name: String, _ s: AttentionShape) throws -> String {
        guard KernelSources.attentionHeadDimensions.contains(s.headDimension) else {
            throw TensorError.invalidArgument(
                operation: "attention on CUDA",
                reason: "head dimension \(s.headDimension) has no kernel; supported: "
                    + KernelSources.attentionHeadDimensions.sorted().map(String.init).joined(separator: ", "))
        }
        guard s.batch <= 65_535, s.queryHeads <= 65_535 else {
            throw TensorError.invalidArgument(operation: "attention on CUDA", reason: "batch and heads must be ≤ 65535")
        }
        return "\(name)_d\(s.headDimension)"
    }

    /// A dropout draw as the kernels that drop inside another computation take it (attention probabilities, a norm's
    /// residual): seed, threshold, kept scale; threshold 0 with scale 1 drops nothing.
    static func dropoutArguments(_ dropout: SeededDropout?) -> [KernelArgument] {
        guard let dropout, dropout.probability > 0 else { return [.int64(0), .int32(0), .float(1)] }
        return [.int64(Int64(bitPattern: dropout.seed)), .int32(Int32(dropout.threshold)), .float(Float(dropout.keptScale))]
    }

    static func sizeArguments(_ s: AttentionShape) -> [KernelArgument] {
        [
            .int32(Int32(s.batch)), .int32(Int32(s.queryLength)), .int32(Int32(s.keyLength)), .int32(Int32(s.queryHeads)),
            .int32(Int32(s.keyValueHeads)), .int32(s.causal ? 1 : 0), .float(s.scale),
        ]
    }
}

/// Which RoPE table: head dimension and the base's bit pattern (the table is the same for every dtype).
struct RotaryTableKey: Hashable {
    let headDimension: Int
    let baseBits: UInt32
}
