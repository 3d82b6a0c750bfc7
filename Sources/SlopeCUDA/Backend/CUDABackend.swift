import CCUDA
import SlopeCore
import Synchronization

/// The GPU backend: device memory from a caching allocator, kernels compiled by NVRTC, dense GEMMs on
/// cuBLASLt. Every op has the CPU backend's semantics (the CPU backend is the reference `slope doctor`
/// checks it against). Tensors are float32, bfloat16 or float16 (float64 stays on the CPU), ids int32,
/// masks uint8. All work is issued on one stream; downloads wait for it.
public final class CUDABackend: Backend, @unchecked Sendable {
    public let cudaDevice: CUDADevice
    let allocator: CachingAllocator
    let compiler: KernelCompiler
    let blas: CuBLASLtGEMM
    /// nil when cuSPARSELt cannot be loaded: sparse GEMMs then run dense (doctor reports why).
    let cusparseLt: CuSPARSELtMatmul?
    let decisions: SparseGEMMDecisionStore
    /// cuDNN, started on first use (only the `cudnn` attention route, doctor and bench ask for it), or why it
    /// cannot be: attention then runs on slope's kernels.
    let cudnnState = Mutex<Result<CuDNNAttention, CuDNNUnavailable>?>(nil)
    /// Forces one route for every sparse GEMM instead of the measured choice (checks and benchmarks);
    /// starts from `SLOPE_SPARSE_GEMM` = dense, sparseA, sparseB or skinny.
    public var sparseRoute: String?
    /// Whether sparseA GEMMs add the bias in cuSPARSELt's epilogue instead of a kernel after the GEMM (one pass
    /// over the output less); `SLOPE_SPARSE_BIAS=kernel` turns it off.
    public var sparseBiasEpilogue = true
    /// Which ops fuse what the unfused route runs as separate passes (all by default). `SLOPE_FUSIONS` = on, off,
    /// or a comma-separated list of ``Fusion`` names, for same-run comparisons and checks; results agree to rounding.
    public var fusions = Set(Fusion.allCases)
    /// How attention runs (see ``AttentionRoute``); nil chooses per call. Starts from `SLOPE_ATTENTION`.
    public var attentionRoute: AttentionRoute?
    /// Which instantiation of the fused attention kernels runs (index into
    /// `TensorCoreAttentionKernels.forwardVariants` / `backwardVariants` of the head dimension; 0, the default, is
    /// the fastest measured). `slope bench attention` times each; `SLOPE_ATTENTION_VARIANT=F,B` starts from others.
    public var attentionVariant = (forward: 0, backward: 0)
    /// Forces one form of merged sparse + low-rank inference instead of the measured choice (checks and
    /// benchmarks); starts from `SLOPE_MERGED_INFERENCE` = folded, factored, stacked or skinny.
    public var mergedInferenceForm: MergedInferenceForm?
    /// cuSPARSELt plans refused with the ReLU epilogue, asked once: those GEMMs apply ReLU by a kernel after.
    let reluEpilogueRefusals = Mutex<Set<CuSPARSELtMatmul.Key>>([])
    /// Host-side conversions reuse the CPU backend's (round-to-nearest-even) code.
    let host = CPUBackend()
    /// RoPE's (cos, sin) tables per (head dimension, base bits), with the positions each covers (grown on demand).
    let rotaryTables = Mutex<[RotaryTableKey: (positions: Int, table: Tensor)]>([:])
    /// Index arrays of generation's ops (rows, positions, ranges), uploaded once per decode step, not once per layer.
    let indexUploads = RecentUploads<Tensor>()
    /// Uploads staged through pinned memory without waiting for the stream (`SLOPE_PINNED_UPLOADS=1`; off by default:
    /// no gain measured).
    let pinnedUploads: PinnedUploads?
    /// Which skinny 2:4 kernel decoding's sparse GEMMs run (`SLOPE_SKINNY_KERNEL` = mma, the default, staged or plain).
    public var skinnyKernel = SkinnySparseGEMM.Kernel.mma
    /// Warps per SM the tensor-core skinny kernel's grid aims at (`SLOPE_SKINNY_WARPS`).
    var skinnyWarpsPerMultiprocessor = SkinnySparseGEMM.defaultWarpsPerMultiprocessor
    /// How a dense GEMM of few rows of X runs (`SLOPE_DENSE_GEMM`: measured per shape by default).
    var denseGEMMChoice = SkinnyDenseGEMM.Choice.auto
    /// `SLOPE_DECODE_ATTENTION` (BackendSettings).
    public var decodeAttentionKernel = DecodeAttentionKernel.wide
    /// Whether ``record(_:)`` records CUDA graphs (`SLOPE_CUDA_GRAPHS=0` turns it off: decode steps then run op by op).
    public var recordsGraphs = true
    /// While a graph is being recorded, the memory its ops have addressed (kept for the graph's life).
    let recording = Mutex<[CUDAStorage]?>(nil)
    /// Loaded modules by family and dtype: the hot path of every launch, so it must not rebuild or hash
    /// the kernel source (that cost ~0.1 ms per launch and left the GPU idle between small kernels).
    private let loadedModules = Mutex<[String: CUDAModule]>([:])

    public init(ordinal: Int = 0) throws {
        cudaDevice = try CUDADevice(ordinal: ordinal)
        allocator = CachingAllocator(provider: DriverMemoryProvider(device: cudaDevice))
        cudaDevice.profiler?.watchMemory(peakSinceMark: { [allocator] in allocator.windowPeak }, mark: { [allocator] in allocator.startPeakWindow() })
        let environment = processEnvironment(["SLOPE_CACHE_DIR", "HOME"] + BackendSettings.variables)
        let settings = try BackendSettings(environment)
        pinnedUploads = settings.pinnedUploads ? PinnedUploads(device: cudaDevice) : nil
        compiler = try KernelCompiler(device: cudaDevice, cache: KernelCache(environment: environment))
        blas = try CuBLASLtGEMM(device: cudaDevice, allocator: allocator)
        cusparseLt = try? CuSPARSELtMatmul(device: cudaDevice)
        // Routes timed with one skinny kernel are not the other's: each keeps its own decisions.
        decisions = SparseGEMMDecisionStore(path: SparseGEMMDecisionStore.path(
            cacheDirectory: KernelCache.cacheDirectory(environment), device: "\(cudaDevice.name) \(cudaDevice.architecture)",
            cusparseLtVersion: cusparseLt?.version ?? 0, cublasLtVersion: blas.version, skinnyKernel: settings.skinnyDecisionsTag))
        skinnyKernel = settings.skinnyKernel
        skinnyWarpsPerMultiprocessor = settings.skinnyWarpsPerMultiprocessor
        denseGEMMChoice = settings.denseGEMMChoice
        decodeAttentionKernel = settings.decodeAttentionKernel
        recordsGraphs = settings.recordsGraphs
        sparseRoute = settings.sparseRoute
        sparseBiasEpilogue = settings.sparseBiasEpilogue
        fusions = settings.fusions
        attentionVariant = settings.attentionVariant
        attentionRoute = settings.attentionRoute
        mergedInferenceForm = settings.mergedInferenceForm
    }

    public var device: Device { .cuda(cudaDevice.ordinal) }

    public var name: String {
        "\(cudaDevice.name) (\(cudaDevice.architecture), \(cudaDevice.multiprocessorCount) SMs, driver \(cudaDevice.driverVersion / 1000).\(cudaDevice.driverVersion % 1000 / 10))"
    }

    public var memoryCapacity: Int? { cudaDevice.totalMemory }

    public var memoryStatistics: MemoryStatistics {
        let stats = allocator.statistics
        return MemoryStatistics(currentBytes: stats.inUse, peakBytes: stats.peakInUse)
    }

    /// NVRTC's version, e.g. "13.0".
    public var compilerVersion: String { compiler.compilerVersion }
    /// cuBLASLt's version number, e.g. 130100.
    public var cublasLtVersion: Int { blas.version }
    /// cuSPARSELt's version number (e.g. 800), or nil when it is not loaded.
    public var cusparseLtVersion: Int? { cusparseLt?.version }
    /// cuDNN's version ("9.13.0"), or why it is not used.
    public var cudnnVersion: Result<String, CuDNNUnavailable> {
        loadedCuDNN().map(\.api.versionText)
    }

    // MARK: Helpers shared by the op files

    /// The tensor's memory, its contents recomputed first if they were given back (``CUDAStorage/evict()``).
    func storage(_ tensor: Tensor, _ operation: String) throws -> CUDAStorage {
        let storage = try unrestoredStorage(tensor, operation)
        if !storage.isResident { try restore(storage) }
        return storage
    }

    /// The tensor's memory as it is, evicted or not (for ops that only check where it lives, or rewrite it).
    func unrestoredStorage(_ tensor: Tensor, _ operation: String) throws -> CUDAStorage {
        guard let storage = tensor.storage as? CUDAStorage, storage.device == device else {
            throw TensorError.wrongDevice(operation: operation, expected: device, actual: tensor.device)
        }
        recording.withLock { $0?.append(storage) }  // a recorded graph keeps every address its ops use
        return storage
    }

    /// Throws when a graph is being recorded: `operation` needs the host in between, which a graph cannot replay.
    func requireNotRecording(_ operation: String) throws {
        if recording.withLock({ $0 != nil }) { throw CUDAError.notRecordable(operation: operation) }
    }

    func address(_ tensor: Tensor, _ operation: String) throws -> CUdeviceptr {
        try storage(tensor, operation).address
    }

    /// A kernel's optional operand, for `.optionalPointer` (NULL when absent).
    func address(ifAny tensor: Tensor?, _ operation: String) throws -> CUdeviceptr? {
        try tensor.map { try address($0, operation) }
    }

    func newTensor(_ shape: [Int], dtype: DType) throws -> Tensor {
        let bytes = shape.reduce(1, *) * dtype.byteSize
        return Tensor(shape: shape, dtype: dtype, storage: try CUDAStorage(byteCount: bytes, device: device, allocator: allocator))
    }

    /// Launches kernel `name` of `family` compiled for `dtype`.
    func launch(
        _ family: KernelFamily, _ name: String, dtype: DType, grid: (Int, Int, Int), block: (Int, Int, Int) = (256, 1, 1),
        sharedBytes: Int = 0, _ arguments: [KernelArgument]
    ) throws {
        let function = try kernel(family, name, dtype: dtype)
        if sharedBytes > 48 << 10 {  // beyond the default limit a kernel must opt in (a cheap call; not cached)
            try cudaDevice.driver.check(
                cudaDevice.driver.cuFuncSetAttribute(function, Int32(SLOPE_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), Int32(sharedBytes)),
                "cuFuncSetAttribute(\(name), dynamic shared memory \(sharedBytes) bytes)")
        }
        try cudaDevice.profiled(name) {
            try cudaDevice.launch(function, name: name, grid: grid, block: block, sharedBytes: sharedBytes, arguments)
        }
    }

    /// Kernel `name` of `family` compiled for `dtype` (compiled and loaded on first use).
    func kernel(_ family: KernelFamily, _ name: String, dtype: DType) throws -> CUfunction {
        let moduleName = "\(family.rawValue)_\(dtype)"
        let module = try loadedModules.withLock { $0[moduleName] } ?? {
            let compiled = try compiler.module(moduleName, source: family.translationUnit(for: dtype))
            loadedModules.withLock { $0[moduleName] = compiled }
            return compiled
        }()
        return try module.function(name)
    }

    /// Registers per thread and local-memory bytes per thread (register spills) of a kernel, as ptxas built it.
    func kernelResources(_ family: KernelFamily, _ name: String, dtype: DType) throws -> (registers: Int, spillBytes: Int) {
        (try kernelAttribute(family, name, dtype: dtype, SLOPE_CU_FUNC_ATTRIBUTE_NUM_REGS),
         try kernelAttribute(family, name, dtype: dtype, SLOPE_CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES))
    }

    /// The most threads a block of the kernel may have (fewer than 1024 where its registers allow fewer).
    func maximumThreadsPerBlock(_ family: KernelFamily, _ name: String, dtype: DType) throws -> Int {
        try kernelAttribute(family, name, dtype: dtype, SLOPE_CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)
    }

    private func kernelAttribute(_ family: KernelFamily, _ name: String, dtype: DType, _ id: some BinaryInteger) throws -> Int {
        let function = try kernel(family, name, dtype: dtype)
        var value: Int32 = 0
        try cudaDevice.driver.check(cudaDevice.driver.cuFuncGetAttribute(&value, Int32(id), function), "cuFuncGetAttribute(\(name))")
        return Int(value)
    }

    /// Marks a tensor as written in place: caches of its contents go stale, and contents that were derived
    /// (``CUDAStorage/Derivation``) are primary from now on.
    func touch(_ tensor: Tensor) throws {
        guard let storage = tensor.storage as? CUDAStorage else { return }
        if !storage.isResident { try restore(storage) }  // (a partial write must land on the current contents)
        storage.generation &+= 1
        storage.derivation = nil
        storage.uploadedRange = nil
    }

    // MARK: Memory and transfers

    public func zeros(_ shape: [Int], dtype: DType) throws -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.invalidArgument(operation: "zeros", reason: "negative dimension in \(shape)")
        }
        let tensor = try newTensor(shape, dtype: dtype)
        try memsetZero(tensor)
        return tensor
    }

    func memsetZero(_ tensor: Tensor) throws {
        guard tensor.byteCount > 0 else { return }
        try touch(tensor)
        try cudaDevice.makeCurrent()
        try cudaDevice.driver.check(
            cudaDevice.driver.cuMemsetD8Async(try address(tensor, "zeros"), 0, tensor.byteCount, cudaDevice.stream), "cuMemsetD8Async")
    }

    /// Copies a host tensor's bytes into a new device tensor.
    func upload(_ hostTensor: Tensor) throws -> Tensor {
        let tensor = try newTensor(hostTensor.shape, dtype: hostTensor.dtype)
        try upload((hostTensor.storage as! HostStorage).pointer, count: tensor.byteCount, into: tensor)
        return tensor
    }

    /// Copies `count` host bytes over the start of a device tensor, in stream order; the host memory may be reused
    /// as soon as this returns.
    func upload(_ source: UnsafeRawPointer, count: Int, into tensor: Tensor) throws {
        guard count > 0 else { return }
        try requireNotRecording("an upload")
        try touch(tensor)
        try cudaDevice.makeCurrent()
        if let pinnedUploads, try pinnedUploads.upload(source, count: count, to: address(tensor, "upload")) { return }
        try cudaDevice.driver.check(
            cudaDevice.driver.cuMemcpyHtoDAsync(try address(tensor, "upload"), source, count, cudaDevice.stream), "cuMemcpyHtoDAsync")
        try cudaDevice.synchronize()  // the host buffer may be freed as soon as we return
    }

    /// A host copy of a device tensor (waits for pending work). Contents recomputed for it alone (they had been
    /// given back, ``CUDAStorage/evict()``) are given back again after: saving a checkpoint reads every weight.
    func download(_ tensor: Tensor) throws -> Tensor {
        let hostTensor = try host.zeros(tensor.shape, dtype: tensor.dtype)
        guard tensor.byteCount > 0 else { return hostTensor }
        try requireNotRecording("a read-back")
        let storage = try unrestoredStorage(tensor, "download")
        let wasEvicted = !storage.isResident
        try cudaDevice.makeCurrent()
        try cudaDevice.driver.check(
            cudaDevice.driver.cuMemcpyDtoHAsync((hostTensor.storage as! HostStorage).pointer, try address(tensor, "download"), tensor.byteCount, cudaDevice.stream),
            "cuMemcpyDtoHAsync")
        try cudaDevice.synchronize()
        if wasEvicted { storage.evict() }
        return hostTensor
    }

    /// Copies `count` bytes between device addresses, in stream order.
    func copyBytes(from source: CUdeviceptr, to destination: CUdeviceptr, count: Int) throws {
        guard count > 0 else { return }
        try cudaDevice.makeCurrent()
        try cudaDevice.driver.check(cudaDevice.driver.cuMemcpyDtoDAsync(destination, source, count, cudaDevice.stream), "cuMemcpyDtoDAsync")
    }

    public func tensor(_ values: [Float], shape: [Int], dtype: DType) throws -> Tensor {
        try upload(host.tensor(values, shape: shape, dtype: dtype))
    }

    public func tensor(_ values: [Double], shape: [Int], dtype: DType) throws -> Tensor {
        try upload(host.tensor(values, shape: shape, dtype: dtype))
    }

    public func tensor(_ values: [Int32], shape: [Int]) throws -> Tensor {
        let tensor = try upload(host.tensor(values, shape: shape))
        try unrestoredStorage(tensor, "tensor").uploadedRange = values.min().map { $0...values.max()! }
        return tensor
    }

    public func tensor(_ values: [UInt8], shape: [Int]) throws -> Tensor {
        try upload(host.tensor(values, shape: shape))
    }

    public func floats(_ tensor: Tensor) throws -> [Float] { try host.floats(download(tensor)) }
    public func doubles(_ tensor: Tensor) throws -> [Double] { try host.doubles(download(tensor)) }
    public func int32s(_ tensor: Tensor) throws -> [Int32] { try host.int32s(download(tensor)) }
    public func uint8s(_ tensor: Tensor) throws -> [UInt8] { try host.uint8s(download(tensor)) }

    public func cast(_ tensor: Tensor, to dtype: DType) throws -> Tensor {
        let result = try newTensor(tensor.shape, dtype: dtype)
        try copy(tensor, into: result)
        return result
    }

    public func copy(_ source: Tensor, into destination: Tensor) throws {
        guard source.count == destination.count else {
            throw TensorError.shapeMismatch(operation: "copy", shapes: [source.shape, destination.shape], reason: "element counts differ")
        }
        try touch(destination)
        if source.dtype == destination.dtype {
            try copyBytes(from: address(source, "copy"), to: address(destination, "copy"), count: source.byteCount)
            return
        }
        // Different float types meet in float32: source → float32 → destination.
        guard source.dtype.isFloatingPoint, destination.dtype.isFloatingPoint else {
            throw TensorError.dtypeMismatch(operation: "copy on CUDA", dtypes: [source.dtype, destination.dtype])
        }
        let count = Int64(source.count)
        if destination.dtype == .float32 {
            return try launch(.elementwise, "convert_to_float", dtype: source.dtype, grid: elementwiseGrid(source.count), [
                .pointer(address(source, "copy")), .pointer(address(destination, "copy")), .int64(count),
            ])
        }
        var staging = source
        if source.dtype != .float32 {
            staging = try newTensor(source.shape, dtype: .float32)
            try launch(.elementwise, "convert_to_float", dtype: source.dtype, grid: elementwiseGrid(source.count), [
                .pointer(address(source, "copy")), .pointer(address(staging, "copy")), .int64(count),
            ])
        }
        try launch(.elementwise, "convert_from_float", dtype: destination.dtype, grid: elementwiseGrid(source.count), [
            .pointer(address(staging, "copy")), .pointer(address(destination, "copy")), .int64(count),
        ])
    }

    public func fill(_ tensor: Tensor, with value: Double) throws {
        if value == 0 { return try memsetZero(tensor) }
        guard tensor.dtype.isFloatingPoint else {
            throw TensorError.unsupportedDType(operation: "fill with \(value) on CUDA", dtype: tensor.dtype)
        }
        try touch(tensor)
        try launch(.elementwise, "fill", dtype: tensor.dtype, grid: elementwiseGrid(tensor.count), [
            .pointer(address(tensor, "fill")), .int64(Int64(tensor.count)), .float(Float(value)),
        ])
    }
}

/// The named variables of the process environment.
func processEnvironment(_ names: [String]) -> [String: String] {
    var result: [String: String] = [:]
    for name in names {
        if let value = getenv(name) { result[name] = String(cString: value) }
    }
    return result
}

#if canImport(Glibc)
import Glibc
#endif
