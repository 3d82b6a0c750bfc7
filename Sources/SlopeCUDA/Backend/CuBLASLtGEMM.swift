import CCUDA
import SlopeCore
import Synchronization

/// Dense GEMMs on cuBLASLt. Row-major `C[m,n] = op(A)·op(B)` is issued as the column-major
/// `Cᵀ = op(B)ᵀ·op(A)ᵀ`, so no data is transposed. Float32 uses full FP32 compute (no TF32, which is
/// said out loud: results must match the CPU reference); bf16/fp16 multiply with FP32 accumulation.
final class CuBLASLtGEMM: @unchecked Sendable {
    struct Key: Hashable {
        let m: Int, n: Int, k: Int
        let transA: Bool, transB: Bool
        let dtype: DType
        let epilogue: Epilogue
        /// C's element type (float32 output from bf16/fp16 inputs is allowed).
        var outputType: DType
        /// Row strides of A, B, C as stored (row-major), in elements.
        var lda: Int, ldb: Int, ldc: Int
        /// Strided batches: `batch` products, operand i at `stride·i` elements.
        var batch = 1
        var strideA = 0, strideB = 0, strideC = 0
        /// Bytes every operand address (each batch's included) is a multiple of; cuBLASLt assumes 256.
        var alignment = 256

        /// A single contiguous product.
        init(m: Int, n: Int, k: Int, transA: Bool, transB: Bool, dtype: DType, epilogue: Epilogue = .none) {
            (self.m, self.n, self.k, self.transA, self.transB, self.dtype, self.epilogue) = (m, n, k, transA, transB, dtype, epilogue)
            outputType = dtype
            lda = transA ? m : k
            ldb = transB ? k : n
            ldc = n
        }
    }

    /// What the GEMM does besides the product; each reads or writes the vector at the bias pointer.
    enum Epilogue: Hashable {
        case none
        /// `+ bias[c]` on every row of C (our row-major C; cuBLASLt's `BIAS` over its column-major rows).
        case bias
        /// Writes `Σ_k A[k, r]` for `C = Aᵀ·B` (a linear layer's bias gradient beside its weight gradient:
        /// cuBLASLt's `BGRADB`, the reduction of its B operand, our A, over k).
        case biasGradient
        /// `max(·, 0)` on every element of C after the product (and the bias, with `reluBias`).
        case relu, reluBias

        var label: String {
            switch self {
            case .none, .bias: ""
            case .biasGradient: " + bgrad"
            case .relu, .reluBias: " + relu"
            }
        }

        /// cuBLASLt's `cublasLtEpilogue_t`.
        var cuBLASLtValue: UInt32 {
            switch self {
            case .none: UInt32(SLOPE_CUBLASLT_EPILOGUE_DEFAULT)
            case .bias: UInt32(SLOPE_CUBLASLT_EPILOGUE_BIAS)
            case .biasGradient: UInt32(SLOPE_CUBLASLT_EPILOGUE_BGRADB)
            case .relu: UInt32(SLOPE_CUBLASLT_EPILOGUE_RELU)
            case .reluBias: UInt32(SLOPE_CUBLASLT_EPILOGUE_RELU_BIAS)
            }
        }
    }

    /// Descriptors and the chosen algorithm for one key, created once.
    final class Plan: @unchecked Sendable {
        var description: cublasLtMatmulDesc_t?
        var layoutA: cublasLtMatrixLayout_t?
        var layoutB: cublasLtMatrixLayout_t?
        var layoutC: cublasLtMatrixLayout_t?
        var algorithm = slope_cublasLtMatmulAlgo()
    }

    let api: CuBLASLtAPI
    let device: CUDADevice
    private let handle: cublasLtHandle_t
    let workspace: CUDAStorage
    private let plans = Mutex<[Key: Plan]>([:])
    private let unsupported = Mutex<Set<Key>>([])
    static let workspaceBytes = 32 << 20

    init(device: CUDADevice, allocator: CachingAllocator) throws {
        api = try CUDALibraries.cublasLt()
        self.device = device
        var handle: cublasLtHandle_t?
        try api.check(api.cublasLtCreate(&handle), "cublasLtCreate")
        guard let handle else { throw CUDAError.noDevice(reason: "cublasLtCreate returned no handle") }
        self.handle = handle
        workspace = try CUDAStorage(byteCount: Self.workspaceBytes, device: .cuda(device.ordinal), allocator: allocator)
    }

    var version: Int { api.cublasLtGetVersion() }

    static func dataType(_ dtype: DType) throws -> cudaDataType {
        switch dtype {
        case .float32: return cudaDataType(SLOPE_CUDA_R_32F)
        case .bfloat16: return cudaDataType(SLOPE_CUDA_R_16BF)
        case .float16: return cudaDataType(SLOPE_CUDA_R_16F)
        default: throw TensorError.unsupportedDType(operation: "gemm on CUDA", dtype: dtype)
        }
    }

    private func plan(for key: Key) throws -> Plan {
        if let plan = plans.withLock({ $0[key] }) { return plan }
        let plan = Plan()
        let type = try Self.dataType(key.dtype)
        try api.check(api.cublasLtMatmulDescCreate(&plan.description, Int32(SLOPE_CUBLAS_COMPUTE_32F), cudaDataType(SLOPE_CUDA_R_32F)), "cublasLtMatmulDescCreate")
        // Column-major view: D[n, m] = op(B')·op(A') with B' = our A and A' = our B.
        var transA = Int32(key.transB ? SLOPE_CUBLAS_OP_T : SLOPE_CUBLAS_OP_N)
        var transB = Int32(key.transA ? SLOPE_CUBLAS_OP_T : SLOPE_CUBLAS_OP_N)
        try api.check(api.cublasLtMatmulDescSetAttribute(plan.description, Int32(SLOPE_CUBLASLT_MATMUL_DESC_TRANSA), &transA, 4), "cublasLtMatmulDescSetAttribute(TRANSA)")
        try api.check(api.cublasLtMatmulDescSetAttribute(plan.description, Int32(SLOPE_CUBLASLT_MATMUL_DESC_TRANSB), &transB, 4), "cublasLtMatmulDescSetAttribute(TRANSB)")
        if key.epilogue != .none {
            var epilogue = key.epilogue.cuBLASLtValue
            try api.check(api.cublasLtMatmulDescSetAttribute(plan.description, Int32(SLOPE_CUBLASLT_MATMUL_DESC_EPILOGUE), &epilogue, 4), "cublasLtMatmulDescSetAttribute(EPILOGUE)")
        }
        let (m, n, k) = (UInt64(key.m), UInt64(key.n), UInt64(key.k))
        // A' is our B: stored [k, n] (→ column-major [n, k]) or, transposed, [n, k] (→ [k, n]).
        try api.check(api.cublasLtMatrixLayoutCreate(&plan.layoutA, type, key.transB ? k : n, key.transB ? n : k, Int64(key.ldb)), "cublasLtMatrixLayoutCreate(B)")
        try api.check(api.cublasLtMatrixLayoutCreate(&plan.layoutB, type, key.transA ? m : k, key.transA ? k : m, Int64(key.lda)), "cublasLtMatrixLayoutCreate(A)")
        try api.check(api.cublasLtMatrixLayoutCreate(&plan.layoutC, try Self.dataType(key.outputType), n, m, Int64(key.ldc)), "cublasLtMatrixLayoutCreate(C)")
        if key.batch > 1 {
            for (layout, stride) in [(plan.layoutA, key.strideB), (plan.layoutB, key.strideA), (plan.layoutC, key.strideC)] {
                var count = Int32(key.batch), offset = Int64(stride)
                try api.check(api.cublasLtMatrixLayoutSetAttribute(layout, Int32(SLOPE_CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT), &count, 4), "cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)")
                try api.check(api.cublasLtMatrixLayoutSetAttribute(layout, Int32(SLOPE_CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET), &offset, 8), "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)")
            }
        }
        var preference: cublasLtMatmulPreference_t?
        try api.check(api.cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate")
        defer { _ = api.cublasLtMatmulPreferenceDestroy(preference) }
        var limit = UInt64(Self.workspaceBytes)
        try api.check(api.cublasLtMatmulPreferenceSetAttribute(preference, Int32(SLOPE_CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES), &limit, 8), "cublasLtMatmulPreferenceSetAttribute")
        if key.alignment < 256 {
            var alignment = UInt32(key.alignment)
            for attribute in [SLOPE_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, SLOPE_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                              SLOPE_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, SLOPE_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES] {
                try api.check(api.cublasLtMatmulPreferenceSetAttribute(preference, Int32(attribute), &alignment, 4), "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)")
            }
        }
        var result = slope_cublasLtMatmulHeuristicResult()
        var returned: Int32 = 0
        try api.check(
            api.cublasLtMatmulAlgoGetHeuristic(handle, plan.description, plan.layoutA, plan.layoutB, plan.layoutC, plan.layoutC, preference, 1, &result, &returned),
            "cublasLtMatmulAlgoGetHeuristic(\(key.m)×\(key.n)×\(key.k) \(key.dtype))")
        guard returned > 0 else {
            throw CUDAError.callFailed(call: "cublasLtMatmulAlgoGetHeuristic(\(key.m)×\(key.n)×\(key.k)) found no algorithm", library: .cublas, status: 15)
        }
        plan.algorithm = result.algo
        plans.withLock { $0[key] = plan }
        return plan
    }

    /// Whether cuBLASLt has an algorithm for `key` (an epilogue such as `BGRADB` is not offered for every
    /// layout and type); a failed plan is remembered, so the question costs one heuristic query per key.
    func supports(_ key: Key) -> Bool {
        if unsupported.withLock({ $0.contains(key) }) { return false }
        do {
            _ = try plan(for: key)
            return true
        } catch {
            unsupported.withLock { _ = $0.insert(key) }
            return false
        }
    }

    /// `C = alpha·op(A)·op(B) + beta·C (+ bias per column)` on device addresses (row-major, contiguous).
    func run(
        m: Int, n: Int, k: Int, transA: Bool, transB: Bool, dtype: DType, alpha: Float,
        a: CUdeviceptr, b: CUdeviceptr, beta: Float, c: CUdeviceptr, bias: CUdeviceptr?
    ) throws {
        try run(Key(m: m, n: n, k: k, transA: transA, transB: transB, dtype: dtype, epilogue: bias == nil ? .none : .bias), alpha: alpha, a: a, b: b, beta: beta, c: c, bias: bias)
    }

    /// The general form: strides, strided batches and the output type come from `key`.
    func run(_ key: Key, alpha: Float, a: CUdeviceptr, b: CUdeviceptr, beta: Float, c: CUdeviceptr, bias: CUdeviceptr? = nil) throws {
        let (m, n, k, dtype) = (key.m, key.n, key.k, key.dtype)
        let (transA, transB) = (key.transA, key.transB)
        guard m > 0, n > 0 else { return }
        let plan = try plan(for: key)
        if var biasAddress = bias {
            try api.check(api.cublasLtMatmulDescSetAttribute(plan.description, Int32(SLOPE_CUBLASLT_MATMUL_DESC_BIAS_POINTER), &biasAddress, 8), "cublasLtMatmulDescSetAttribute(BIAS_POINTER)")
        }
        var alpha = alpha, beta = beta
        try device.makeCurrent()
        try device.profiled("cublasLt \(key.batch > 1 ? "\(key.batch)× " : "")\(m)×\(n)×\(k)\(transA ? " Aᵀ" : "")\(transB ? " Bᵀ" : "")\(key.epilogue.label)") { try api.check(
            api.cublasLtMatmul(
                handle, plan.description, &alpha, UnsafeRawPointer(bitPattern: UInt(b)), plan.layoutA,
                UnsafeRawPointer(bitPattern: UInt(a)), plan.layoutB, &beta, UnsafeRawPointer(bitPattern: UInt(c)), plan.layoutC,
                UnsafeMutableRawPointer(bitPattern: UInt(c)), plan.layoutC, &plan.algorithm,
                UnsafeMutableRawPointer(bitPattern: UInt(workspace.address)), Self.workspaceBytes, device.stream),
            "cublasLtMatmul(\(m)×\(n)×\(k) \(dtype))") }
    }
}
