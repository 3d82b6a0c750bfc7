import CCUDA
import SlopeCore
import Synchronization

/// cuDNN on slope's stream and the attention plans made so far. A shape cuDNN has no engine for is remembered
/// too, so it is asked once; such shapes run on slope's own kernels.
final class CuDNNAttention: @unchecked Sendable {
    let api: CuDNNAPI
    let handle: cudnnHandle_t

    struct Key: Hashable, Sendable {
        let batch: Int, queryLength: Int, keyLength: Int, queryHeads: Int, keyValueHeads: Int, headDimension: Int
        let causal: Bool
        let dtype: DType
        let backward: Bool

        init(_ s: AttentionShape, dtype: DType, backward: Bool) {
            (batch, queryLength, keyLength) = (s.batch, s.queryLength, s.keyLength)
            (queryHeads, keyValueHeads, headDimension) = (s.queryHeads, s.keyValueHeads, s.headDimension)
            (causal, self.dtype, self.backward) = (s.causal, dtype, backward)
        }
    }

    /// A plan and the layout of the log-sum-exp it reads or writes.
    struct AttentionPlan: Sendable {
        let plan: CuDNNPlan
        /// `[B, H, T]` instead of slope's `[B·T, H]`: the route converts (only where cuDNN refused slope's layout).
        let packedStatistics: Bool
    }

    /// Plans (or refusals) by shape; capped so that a server seeing many prompt lengths does not grow it forever.
    private let plans = Mutex<[Key: Result<AttentionPlan, any Error>]>([:])
    static let maximumPlans = 256

    init(device: CUDADevice) throws {
        api = try CUDALibraries.cudnn()
        try device.makeCurrent()
        var handle: cudnnHandle_t?
        try api.check(api.cudnnCreate(&handle), "cudnnCreate")
        guard let handle else { throw CUDAError.callFailed(call: "cudnnCreate", library: .cudnn, status: 1001) }
        self.handle = handle
        try api.check(api.cudnnSetStream(handle, device.stream), "cudnnSetStream")
    }

    /// Whether cuDNN's fused attention can express the shape at all (cuDNN decides the rest when asked for a plan):
    /// half-precision operands, a head dimension that is a multiple of 8 up to 256, and for causal attention equal
    /// query and key lengths (its causal mask is aligned at the top left; decoding with a cache is not).
    static func applies(to s: AttentionShape, dtype: DType) -> Bool {
        (dtype == .bfloat16 || dtype == .float16) && s.headDimension % 8 == 0 && s.headDimension <= 256
            && (!s.causal || s.queryLength == s.keyLength) && s.queryHeads % s.keyValueHeads == 0
    }

    /// What this cuDNN version gets wrong, or nil: 9.10.0 and 9.10.1 have attention bugs (cuDNN's own frontend
    /// refuses them), and before 9.15.1 the backward needs key lengths that are a multiple of 128 (the frontend
    /// works around it with a padding mask slope does not build).
    static func versionProblem(_ version: Int, _ s: AttentionShape, backward: Bool) -> String? {
        if version == 91_000 || version == 91_001 { return "cuDNN 9.10.0 and 9.10.1 have known attention bugs; install another version" }
        if backward, version < 91_501, s.keyLength % 128 != 0 {
            return "cuDNN before 9.15.1 needs key lengths that are a multiple of 128 in the backward"
        }
        return nil
    }

    /// −∞ for the causal mask (cuDNN before 9.10 takes the most negative float instead).
    var negativeInfinity: Float { api.version >= 91_000 ? -.infinity : -.greatestFiniteMagnitude }

    /// The plan for this shape, made on first use; the error when cuDNN refuses it.
    func plan(_ s: AttentionShape, dtype: DType, backward: Bool) -> Result<AttentionPlan, any Error> {
        let key = Key(s, dtype: dtype, backward: backward)
        if let known = plans.withLock({ $0[key] }) { return known }
        let made = Result {
            if let problem = Self.versionProblem(api.version, s, backward: backward) {
                throw CuDNNUnavailable(reason: problem)
            }
            func graph(packed: Bool) -> CuDNNGraph {
                backward ? CuDNNAttentionGraph.backward(s, dtype: dtype, packedStatistics: packed)
                    : CuDNNAttentionGraph.forward(s, dtype: dtype, packedStatistics: packed)
            }
            do {
                return AttentionPlan(plan: try CuDNNPlan(graph(packed: false), handle: handle, api: api), packedStatistics: false)
            } catch {
                // Slope's layout refused: cuDNN's own, converted around the call, before giving up.
                guard let plan = try? CuDNNPlan(graph(packed: true), handle: handle, api: api) else { throw error }
                return AttentionPlan(plan: plan, packedStatistics: true)
            }
        }
        plans.withLock { plans in
            if plans.count < Self.maximumPlans { plans[key] = made }
        }
        return made
    }
}

/// Why cuDNN is not in use (the library is missing, too old, or failed to start).
public struct CuDNNUnavailable: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}
