import CCUDA
import SlopeCore

/// The `cudnn` attention route: cuDNN's fused attention through ``CuDNNAttentionGraph`` plans. Its log-sum-exp is
/// written in slope's layout ([B·T, H], natural log of the scaled scores), so the other routes' backward can
/// consume a cuDNN forward and the other way round.
extension CUDABackend {
    /// Whether the automatic choice takes cuDNN where it plans: on since `slope doctor` checked the route against
    /// the CPU on an H100 (cuDNN 9.14, 2026-12-07; every attention check with the route forced), where it ran
    /// 1.4–2.0x the fused kernels' speed (docs/benchmarks/training.md). `SLOPE_ATTENTION=fused` turns it off.
    static let cudnnAttentionByDefault = true

    /// cuDNN with a handle on slope's stream, made on the first call (a process that never asks for the route never
    /// loads it), or why it cannot be used; remembered either way.
    func loadedCuDNN() -> Result<CuDNNAttention, CuDNNUnavailable> {
        cudnnState.withLock { state in
            if let state { return state }
            let made = Result { try CuDNNAttention(device: cudaDevice) }.mapError { CuDNNUnavailable(reason: "\($0)") }
            state = made
            return made
        }
    }

    /// Whether the automatic choice may take cuDNN at this shape: query lengths that are a multiple of 128 (training's
    /// sequence lengths). Other lengths run on slope's kernels: each new length would cost cuDNN a plan (prompts of
    /// every length during generation), short ones are cheap there, and cuDNN before 9.15.1 runs no backward for them.
    static func takesCuDNNAutomatically(_ s: AttentionShape) -> Bool {
        s.queryLength >= 128 && s.queryLength % 128 == 0
    }

    /// cuDNN's plan for this call, or nil where the route does not apply or cuDNN has no engine for it.
    func cudnnAttentionPlan(_ s: AttentionShape, dtype: DType, backward: Bool) -> CuDNNAttention.AttentionPlan? {
        guard CuDNNAttention.applies(to: s, dtype: dtype), attentionRoute == .cudnn || Self.takesCuDNNAutomatically(s),
              case .success(let cudnn) = loadedCuDNN()
        else { return nil }
        return try? cudnn.plan(s, dtype: dtype, backward: backward).get()
    }

    /// The plan cuDNN runs at this shape ("attention forward 4×2048×32×128, engine 8, 0 B workspace"), or why it
    /// runs none (doctor and bench report it). Asks cuDNN for the plan if no call has yet.
    public func cudnnAttentionStatus(_ s: AttentionShape, dtype: DType, backward: Bool) -> Result<String, CuDNNUnavailable> {
        let cudnn: CuDNNAttention
        switch loadedCuDNN() {
        case .success(let loaded): cudnn = loaded
        case .failure(let why): return .failure(why)
        }
        guard CuDNNAttention.applies(to: s, dtype: dtype) else {
            return .failure(CuDNNUnavailable(
                reason: "cuDNN's route needs bf16/fp16, a head dimension that is a multiple of 8 up to 256, equal lengths when causal"))
        }
        return cudnn.plan(s, dtype: dtype, backward: backward)
            .map { "\($0.plan.label), \(byteCountText($0.plan.workspaceBytes)) workspace" + ($0.packedStatistics ? ", lse converted" : "") }
            .mapError { CuDNNUnavailable(reason: "\($0)") }
    }

    func cudnnAttention(query: Tensor, key: Tensor, value: Tensor, shape s: AttentionShape) throws -> AttentionOutput {
        guard let plan = cudnnAttentionPlan(s, dtype: query.dtype, backward: false), case .success(let cudnn) = loadedCuDNN() else {
            throw TensorError.invalidArgument(operation: "attention", reason: "cuDNN has no plan for \(s)")
        }
        let operation = "attention"
        let out = try newTensor(query.shape, dtype: query.dtype)
        let lse = try newTensor([s.batch * s.queryLength, s.queryHeads], dtype: .float32)
        let stats = plan.packedStatistics ? try newTensor([s.batch * s.queryHeads * s.queryLength], dtype: .float32) : lse
        try runCuDNN(plan.plan, cudnn, scale: s.scale, [
            "Q": try address(query, operation), "K": try address(key, operation), "V": try address(value, operation),
            "O": try address(out, operation), "Stats": try address(stats, operation),
        ])
        if plan.packedStatistics { try transposeEachBatch(stats, into: lse, batch: s.batch, rows: s.queryHeads, columns: s.queryLength) }
        return AttentionOutput(output: out, logSumExp: lse)
    }

    func cudnnAttentionBackward(
        _ dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor, saved: AttentionOutput, shape s: AttentionShape
    ) throws -> AttentionGradients {
        guard let plan = cudnnAttentionPlan(s, dtype: query.dtype, backward: true), case .success(let cudnn) = loadedCuDNN() else {
            throw TensorError.invalidArgument(operation: "attentionBackward", reason: "cuDNN has no plan for \(s)")
        }
        let operation = "attentionBackward"
        let dq = try newTensor(query.shape, dtype: query.dtype)
        let (dk, dv) = (try newTensor(key.shape, dtype: key.dtype), try newTensor(value.shape, dtype: value.dtype))
        let scratch = CuDNNAttentionGraph.scratchBytes(s)
        let softmaxSum = try newTensor([scratch.softmaxSum / 4], dtype: .float32)
        // cuDNN from 9.6 initialises the accumulator itself; before, it must start at zero.
        let accumulator = cudnn.api.version >= 90_600
            ? try newTensor([scratch.dQAccumulator / 4], dtype: .float32) : try zeros([scratch.dQAccumulator / 4], dtype: .float32)
        var stats = saved.logSumExp
        if plan.packedStatistics {
            stats = try newTensor([s.batch * s.queryHeads * s.queryLength], dtype: .float32)
            try transposeEachBatch(saved.logSumExp, into: stats, batch: s.batch, rows: s.queryLength, columns: s.queryHeads)
        }
        try runCuDNN(plan.plan, cudnn, scale: s.scale, [
            "SoftmaxSum": try address(softmaxSum, operation), "dQAccumulator": try address(accumulator, operation),
            "Q": try address(query, operation), "K": try address(key, operation), "V": try address(value, operation),
            "O": try address(saved.output, operation), "Stats": try address(stats, operation),
            "dO": try address(dOutput, operation), "dQ": try address(dq, operation), "dK": try address(dk, operation),
            "dV": try address(dv, operation),
        ])
        return AttentionGradients(query: dq, key: dk, value: dv)
    }

    /// `[batch][rows, columns]` float32 → `[batch][columns, rows]`: the log-sum-exp between slope's layout and cuDNN's.
    private func transposeEachBatch(_ x: Tensor, into y: Tensor, batch: Int, rows: Int, columns: Int) throws {
        let (source, destination) = (try address(x, "attention"), try address(y, "attention"))
        for b in 0..<batch {
            let offset = CUdeviceptr(b * rows * columns * 4)
            try launch(.layout, "transpose", dtype: .float32, grid: ((columns + 31) / 32, (rows + 31) / 32, 1), block: (32, 8, 1), [
                .pointer(source + offset), .pointer(destination + offset), .int64(Int64(rows)), .int64(Int64(columns)),
            ])
        }
    }

    /// Executes `plan` with these device addresses, the scalars by value and a workspace from the allocator
    /// (stream-ordered: its memory can be reused by whatever is issued after).
    private func runCuDNN(_ plan: CuDNNPlan, _ cudnn: CuDNNAttention, scale: Float, _ addresses: [String: CUdeviceptr]) throws {
        let pointers = addresses.compactMapValues { UnsafeMutableRawPointer(bitPattern: UInt($0)) }
        let workspace = plan.workspaceBytes > 0 ? try newTensor([plan.workspaceBytes], dtype: .uint8) : nil
        let workspaceAddress = try workspace.map { UnsafeMutableRawPointer(bitPattern: UInt(try address($0, "cuDNN workspace"))) } ?? nil
        try cudaDevice.makeCurrent()
        try cudaDevice.profiled("cudnn \(plan.label)") {
            try plan.execute(
                handle: cudnn.handle, pointers: pointers, scalars: ["Scale": scale, "NegativeInfinity": cudnn.negativeInfinity, "One": 1],
                workspace: workspaceAddress)
        }
        withExtendedLifetime(workspace) {}
    }
}
