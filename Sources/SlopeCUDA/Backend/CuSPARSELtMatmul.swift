import CCUDA
import SlopeCore
import Synchronization

/// `Y[T, out] = X[T, in]·Wᵀ` with a 2:4-sparse W on cuSPARSELt.
///
/// Two operand arrangements are possible and neither always wins (DESIGN.md §3):
/// - `sparseA`: W is the structured A operand in column order with opA = T; Y comes out column-major [out, T],
///   which is row-major [T, out].
/// - `sparseB`: W is the structured B operand in row order with opB = T; X and Y are row-major.
/// Each needs its own compressed copy of W (cuSPARSELt's format depends on the arrangement).
final class CuSPARSELtMatmul: @unchecked Sendable {
    enum Arrangement: String, CaseIterable, Codable, Sendable {
        case sparseA, sparseB
    }

    struct Key: Hashable, Sendable {
        let tokens: Int, outFeatures: Int, inFeatures: Int
        let dtype: DType
        let arrangement: Arrangement
        /// A bias added by cuSPARSELt's epilogue (sparseA only: D is column-major [out, T] there, so its rows are
        /// the output features). cuSPARSELt takes the pointer when the plan is made, so each bias has its plan.
        var bias: CUdeviceptr? = nil
        /// `max(·, 0)` after the product and bias (cuSPARSELt's `ACTIVATION_RELU`).
        var relu = false
    }

    /// What cuSPARSELt's search chooses for a plan: the kernel configuration and how it splits K (split-K
    /// partial sums need extra workspace). All four are kept so that a plan restored from disk runs what was timed.
    struct Algorithm: Codable, Hashable, Sendable {
        var configuration: Int32 = 0
        var splitK: Int32 = 1
        var splitKMode: Int32 = 0
        var splitKBuffers: Int32 = 1
    }

    /// The descriptors and plan for one key; the algorithm is chosen by search or restored from disk.
    final class Plan: @unchecked Sendable {
        let key: Key
        var dense = slope_cusparseLtMatDescriptor()
        var structured = slope_cusparseLtMatDescriptor()
        var output = slope_cusparseLtMatDescriptor()
        var matmul = slope_cusparseLtMatmulDescriptor()
        var selection = slope_cusparseLtMatmulAlgSelection()
        var plan = slope_cusparseLtMatmulPlan()
        var workspaceBytes = 0
        /// Set once the plan was made with, or searched for, a chosen algorithm.
        var algorithm: Algorithm?
        init(key: Key) { self.key = key }
    }

    let api: CuSPARSELtAPI
    let device: CUDADevice
    let handle: UnsafeMutablePointer<slope_cusparseLtHandle>
    let version: Int
    private let plans = Mutex<[Key: Plan]>([:])

    init(device: CUDADevice) throws {
        api = try CUDALibraries.cusparseLt()
        self.device = device
        handle = .allocate(capacity: 1)
        handle.initialize(to: slope_cusparseLtHandle())
        try device.makeCurrent()
        try api.check(api.cusparseLtInit(handle), "cusparseLtInit")
        var version: Int32 = 0
        try api.check(api.cusparseLtGetVersion(handle, &version), "cusparseLtGetVersion")
        self.version = Int(version)
    }

    /// The plan for `key`; with `algorithm` the algorithm is fixed instead of left at the default.
    func plan(for key: Key, algorithm: Algorithm? = nil) throws -> Plan {
        if let plan = plans.withLock({ $0[key] }), algorithm == nil || plan.algorithm == algorithm { return plan }
        let plan = Plan(key: key)
        let type = try CuBLASLtGEMM.dataType(key.dtype)
        let (t, out, input) = (Int64(key.tokens), Int64(key.outFeatures), Int64(key.inFeatures))
        let alignment: UInt32 = 16
        let row = Int32(SLOPE_CUSPARSE_ORDER_ROW), column = Int32(SLOPE_CUSPARSE_ORDER_COL)
        let transpose = Int32(SLOPE_CUSPARSE_OPERATION_TRANSPOSE), keep = Int32(SLOPE_CUSPARSE_OPERATION_NON_TRANSPOSE)
        let sparsity = Int32(SLOPE_CUSPARSELT_SPARSITY_50_PERCENT)
        try device.makeCurrent()
        switch key.arrangement {
        case .sparseA:
            // W row-major [out, in] is column-major [in, out]; X row-major [T, in] is column-major [in, T].
            try api.check(api.cusparseLtStructuredDescriptorInit(handle, &plan.structured, input, out, input, alignment, type, column, sparsity), "cusparseLtStructuredDescriptorInit(W)")
            try api.check(api.cusparseLtDenseDescriptorInit(handle, &plan.dense, input, t, input, alignment, type, column), "cusparseLtDenseDescriptorInit(X)")
            try api.check(api.cusparseLtDenseDescriptorInit(handle, &plan.output, out, t, out, alignment, type, column), "cusparseLtDenseDescriptorInit(Y)")
            try api.check(
                api.cusparseLtMatmulDescriptorInit(handle, &plan.matmul, transpose, keep, &plan.structured, &plan.dense, &plan.output, &plan.output, Int32(SLOPE_CUSPARSE_COMPUTE_32F)),
                "cusparseLtMatmulDescriptorInit(sparse A)")
        case .sparseB:
            guard key.bias == nil else {
                throw TensorError.invalidArgument(
                    operation: "cuSPARSELt plan", reason: "a bias epilogue needs W as the A operand (with W as B it would run over tokens)")
            }
            try api.check(api.cusparseLtDenseDescriptorInit(handle, &plan.dense, t, input, input, alignment, type, row), "cusparseLtDenseDescriptorInit(X)")
            try api.check(api.cusparseLtStructuredDescriptorInit(handle, &plan.structured, out, input, input, alignment, type, row, sparsity), "cusparseLtStructuredDescriptorInit(W)")
            try api.check(api.cusparseLtDenseDescriptorInit(handle, &plan.output, t, out, out, alignment, type, row), "cusparseLtDenseDescriptorInit(Y)")
            try api.check(
                api.cusparseLtMatmulDescriptorInit(handle, &plan.matmul, keep, transpose, &plan.dense, &plan.structured, &plan.output, &plan.output, Int32(SLOPE_CUSPARSE_COMPUTE_32F)),
                "cusparseLtMatmulDescriptorInit(sparse B)")
        }
        if var bias = key.bias {
            try api.check(
                api.cusparseLtMatmulDescSetAttribute(handle, &plan.matmul, Int32(SLOPE_CUSPARSELT_MATMUL_BIAS_POINTER), &bias, MemoryLayout<CUdeviceptr>.size),
                "cusparseLtMatmulDescSetAttribute(BIAS_POINTER)")
        }
        if key.relu {
            var on: Int32 = 1
            try api.check(
                api.cusparseLtMatmulDescSetAttribute(handle, &plan.matmul, Int32(SLOPE_CUSPARSELT_MATMUL_ACTIVATION_RELU), &on, MemoryLayout<Int32>.size),
                "cusparseLtMatmulDescSetAttribute(ACTIVATION_RELU)")
        }
        try api.check(api.cusparseLtMatmulAlgSelectionInit(handle, &plan.selection, &plan.matmul, Int32(SLOPE_CUSPARSELT_MATMUL_ALG_DEFAULT)), "cusparseLtMatmulAlgSelectionInit")
        if let algorithm {
            for (attribute, value) in [
                (SLOPE_CUSPARSELT_MATMUL_ALG_CONFIG_ID, algorithm.configuration), (SLOPE_CUSPARSELT_MATMUL_SPLIT_K, algorithm.splitK),
                (SLOPE_CUSPARSELT_MATMUL_SPLIT_K_MODE, algorithm.splitKMode), (SLOPE_CUSPARSELT_MATMUL_SPLIT_K_BUFFERS, algorithm.splitKBuffers),
            ] {
                var value = value
                try api.check(api.cusparseLtMatmulAlgSetAttribute(handle, &plan.selection, Int32(attribute), &value, 4), "cusparseLtMatmulAlgSetAttribute(\(attribute))")
            }
            plan.algorithm = algorithm
        }
        try api.check(api.cusparseLtMatmulPlanInit(handle, &plan.plan, &plan.matmul, &plan.selection), "cusparseLtMatmulPlanInit")
        var workspace = 0
        try api.check(api.cusparseLtMatmulGetWorkspace(handle, &plan.plan, &workspace), "cusparseLtMatmulGetWorkspace")
        plan.workspaceBytes = workspace
        plans.withLock { $0[key] = plan }
        return plan
    }

    /// Bytes of W's compressed form for `plan`'s arrangement.
    func compressedBytes(_ plan: Plan) throws -> (compressed: Int, buffer: Int) {
        var compressed = 0, buffer = 0
        try api.check(api.cusparseLtSpMMACompressedSize2(handle, &plan.structured, &compressed, &buffer), "cusparseLtSpMMACompressedSize2")
        return (compressed, buffer)
    }

    /// Compresses the dense, already 2:4-pruned W at `dense` into `compressed`.
    func compress(_ plan: Plan, dense: CUdeviceptr, into compressed: CUdeviceptr, buffer: CUdeviceptr) throws {
        try device.makeCurrent()
        try api.check(
            api.cusparseLtSpMMACompress2(
                handle, &plan.structured, plan.key.arrangement == .sparseA ? 1 : 0, Int32(SLOPE_CUSPARSE_OPERATION_TRANSPOSE),
                UnsafeRawPointer(bitPattern: UInt(dense)), UnsafeMutableRawPointer(bitPattern: UInt(compressed)),
                UnsafeMutableRawPointer(bitPattern: UInt(buffer)), device.stream),
            "cusparseLtSpMMACompress2")
    }

    /// Runs `Y = X·Wᵀ + beta·Y` (or, with `search`, lets cuSPARSELt time its algorithms and keep the fastest in the plan).
    func run(_ plan: Plan, x: CUdeviceptr, compressed: CUdeviceptr, y: CUdeviceptr, workspace: CUdeviceptr?, beta: Float = 0, search: Bool = false) throws {
        var alpha: Float = 1, beta = beta
        var stream: CUstream? = device.stream
        let (a, b) = plan.key.arrangement == .sparseA ? (compressed, x) : (x, compressed)
        func pointer(_ address: CUdeviceptr) -> UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: UInt(address)) }
        try device.makeCurrent()
        if search {
            try api.check(
                api.cusparseLtMatmulSearch(handle, &plan.plan, &alpha, pointer(a), pointer(b), &beta, pointer(y), pointer(y), workspace.flatMap(pointer), &stream, 1),
                "cusparseLtMatmulSearch")
            var algorithm = Algorithm()
            for (attribute, value) in [
                (SLOPE_CUSPARSELT_MATMUL_ALG_CONFIG_ID, \Algorithm.configuration), (SLOPE_CUSPARSELT_MATMUL_SPLIT_K, \.splitK),
                (SLOPE_CUSPARSELT_MATMUL_SPLIT_K_MODE, \.splitKMode), (SLOPE_CUSPARSELT_MATMUL_SPLIT_K_BUFFERS, \.splitKBuffers),
            ] {
                try api.check(api.cusparseLtMatmulAlgGetAttribute(handle, &plan.selection, Int32(attribute), &algorithm[keyPath: value], 4), "cusparseLtMatmulAlgGetAttribute(\(attribute))")
            }
            plan.algorithm = algorithm
            // The search also picks split-K, whose partial sums need more workspace than the default
            // algorithm: running the searched plan with the old size made cuSPARSELt fail (INTERNAL_ERROR) or
            // write past the buffer (a later cuBLASLt call then failed with EXECUTION_FAILED).
            var workspace = 0
            try api.check(api.cusparseLtMatmulGetWorkspace(handle, &plan.plan, &workspace), "cusparseLtMatmulGetWorkspace")
            plan.workspaceBytes = workspace
        } else {
            try device.profiled("cusparseLt \(plan.key.tokens)×\(plan.key.outFeatures)×\(plan.key.inFeatures) \(plan.key.arrangement)\(plan.key.bias == nil ? "" : " + bias")\(plan.key.relu ? " + relu" : "")") {
                try api.check(
                    api.cusparseLtMatmul(handle, &plan.plan, &alpha, pointer(a), pointer(b), &beta, pointer(y), pointer(y), workspace.flatMap(pointer), &stream, 1),
                    "cusparseLtMatmul(\(plan.key.tokens)×\(plan.key.outFeatures)×\(plan.key.inFeatures) \(plan.key.arrangement))")
            }
        }
    }
}
