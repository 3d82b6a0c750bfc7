import CCUDA

/// One GPU with its primary context and the stream slope issues work on.
///
/// The primary context (`cuDevicePrimaryCtxRetain` + `cuCtxSetCurrent`) is used rather than
/// `cuCtxCreate`, whose signature changed in CUDA 13.
public final class CUDADevice: @unchecked Sendable {
    public let ordinal: Int
    public let name: String
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessorCount: Int
    /// The most dynamic shared memory one block may opt in to (227 KB on Hopper, 163 KB on an A100).
    public let maxSharedBytesPerBlock: Int
    public let totalMemory: Int
    /// e.g. 13000 for CUDA 13.0.
    public let driverVersion: Int
    let driver: DriverAPI
    let context: CUcontext
    /// All of slope's work goes on this one stream, so operations are ordered without extra synchronisation.
    let stream: CUstream
    /// Per-op timing when `SLOPE_PROFILE=1`.
    public let profiler = OpProfiler.fromEnvironment()

    /// Runs `body`, timed under `name` when profiling.
    func profiled<R>(_ name: @autoclosure () -> String, _ body: () throws -> R) throws -> R {
        guard let profiler else { return try body() }
        return try profiler.measure(name(), synchronize: synchronize, body)
    }

    /// Runs `body` with its ops neither timed nor synchronised by the profiler (for code that times ops itself).
    func unprofiled<R>(_ body: () throws -> R) rethrows -> R {
        guard let profiler else { return try body() }
        return try profiler.suspending(body)
    }

    /// Opens GPU `ordinal`; needs compute capability 8.0 or newer.
    public init(ordinal: Int = 0) throws {
        let driver = try CUDALibraries.driver()
        self.driver = driver
        self.ordinal = ordinal
        let initStatus = driver.cuInit(0)
        if initStatus == 100 {
            throw CUDAError.noDevice(reason: "the driver reports no CUDA-capable device (CUDA_ERROR_NO_DEVICE)")
        }
        try driver.check(initStatus, "cuInit")
        var version: Int32 = 0
        try driver.check(driver.cuDriverGetVersion(&version), "cuDriverGetVersion")
        driverVersion = Int(version)
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard ordinal >= 0, ordinal < Int(count) else {
            throw CUDAError.noDevice(reason: "asked for GPU \(ordinal) but \(count) are visible (check CUDA_VISIBLE_DEVICES)")
        }
        var device: CUdevice = 0
        try driver.check(driver.cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        var nameBuffer = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBuffer, 256, device), "cuDeviceGetName")
        name = String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        func attribute(_ id: Int32, _ label: String) throws -> Int {
            var value: Int32 = 0
            try driver.check(driver.cuDeviceGetAttribute(&value, id, device), "cuDeviceGetAttribute(\(label))")
            return Int(value)
        }
        computeCapability = (
            try attribute(Int32(SLOPE_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR), "major"),
            try attribute(Int32(SLOPE_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR), "minor"))
        multiprocessorCount = try attribute(Int32(SLOPE_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT), "multiprocessors")
        maxSharedBytesPerBlock = try attribute(Int32(SLOPE_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN), "shared memory per block")
        var bytes = 0
        try driver.check(driver.cuDeviceTotalMem(&bytes, device), "cuDeviceTotalMem")
        totalMemory = bytes
        guard computeCapability.major >= 8 else {
            throw CUDAError.unsupportedDevice(name: name, computeCapability: "\(computeCapability.major).\(computeCapability.minor)")
        }
        var context: CUcontext?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        guard let context else { throw CUDAError.noDevice(reason: "cuDevicePrimaryCtxRetain returned no context") }
        self.context = context
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        var stream: CUstream?
        try driver.check(driver.cuStreamCreate(&stream, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate")
        guard let stream else { throw CUDAError.noDevice(reason: "cuStreamCreate returned no stream") }
        self.stream = stream
    }

    /// "sm_90" for an H100: the architecture NVRTC compiles for.
    public var architecture: String { "sm_\(computeCapability.major)\(computeCapability.minor)" }

    /// Makes this device's context current on the calling thread (CUDA contexts are per thread).
    func makeCurrent() throws {
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    }

    /// Waits until all work on the stream is done.
    public func synchronize() throws {
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
    }

    /// Free and total device memory as the driver sees it.
    public func memoryInfo() throws -> (free: Int, total: Int) {
        var free = 0, total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo")
        return (free, total)
    }
}
