import CCUDA
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A loaded CUDA module and the kernels looked up in it.
final class CUDAModule: @unchecked Sendable {
    let module: CUmodule
    private let functions = Mutex<[String: UInt]>([:])
    let device: CUDADevice

    init(module: CUmodule, device: CUDADevice) {
        self.module = module
        self.device = device
    }

    func function(_ name: String) throws -> CUfunction {
        if let cached = functions.withLock({ $0[name] }) { return CUfunction(bitPattern: cached)! }
        var function: CUfunction?
        try device.driver.check(device.driver.cuModuleGetFunction(&function, module, name), "cuModuleGetFunction(\(name))")
        guard let function else { throw CUDAError.symbolNotFound(symbol: name, library: "kernel module", path: "NVRTC output") }
        functions.withLock { $0[name] = UInt(bitPattern: function) }
        return function
    }
}

/// Compiles CUDA C with NVRTC for the device's architecture, caching binaries in memory and on disk.
final class KernelCompiler: @unchecked Sendable {
    let device: CUDADevice
    let nvrtc: NVRTCAPI
    let cache: KernelCache
    let compilerVersion: String
    private let modules = Mutex<[String: CUDAModule]>([:])

    /// Options every kernel is compiled with. No fast-math: results must match the CPU reference.
    var options: [String] { ["--gpu-architecture=\(device.architecture)", "--std=c++17", "-default-device"] }

    init(device: CUDADevice, cache: KernelCache) throws {
        self.device = device
        self.cache = cache
        nvrtc = try CUDALibraries.nvrtc()
        var major: Int32 = 0, minor: Int32 = 0
        try nvrtc.check(nvrtc.nvrtcVersion(&major, &minor), "nvrtcVersion")
        compilerVersion = "\(major).\(minor)"
    }

    /// The module for `source` (`name` labels errors), compiled at most once per process and per cache.
    func module(_ name: String, source: String) throws -> CUDAModule {
        let key = KernelCache.key(source: source, architecture: device.architecture, options: options, compilerVersion: compilerVersion)
        if let loaded = modules.withLock({ $0[key] }) { return loaded }
        let binary = try cache.load(key) ?? {
            let compiled = try compile(name, source: source)
            cache.store(compiled, for: key)
            return compiled
        }()
        try device.makeCurrent()
        var module: CUmodule?
        try binary.withUnsafeBytes { bytes in
            try device.driver.check(device.driver.cuModuleLoadData(&module, bytes.baseAddress), "cuModuleLoadData(\(name))")
        }
        guard let module else { throw CUDAError.compilationFailed(kernel: name, log: "cuModuleLoadData returned no module") }
        let loaded = CUDAModule(module: module, device: device)
        modules.withLock { $0[key] = loaded }
        return loaded
    }

    private func compile(_ name: String, source: String) throws -> [UInt8] {
        var program: nvrtcProgram?
        try nvrtc.check(nvrtc.nvrtcCreateProgram(&program, source, name + ".cu", 0, nil, nil), "nvrtcCreateProgram(\(name))")
        defer { _ = nvrtc.nvrtcDestroyProgram(&program) }
        let arguments = options.map { strdup($0) }
        defer { arguments.forEach { free($0) } }
        let status = arguments.map { UnsafePointer($0) }.withUnsafeBufferPointer { buffer in
            nvrtc.nvrtcCompileProgram(program, Int32(buffer.count), buffer.baseAddress)
        }
        if status != 0 {
            var size = 0
            _ = nvrtc.nvrtcGetProgramLogSize(program, &size)
            var log = [CChar](repeating: 0, count: max(size, 1))
            _ = nvrtc.nvrtcGetProgramLog(program, &log)
            let text = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CUDAError.compilationFailed(kernel: name, log: text.isEmpty ? CUDAStatus.name(of: status, in: .nvrtc) : text)
        }
        var size = 0
        try nvrtc.check(nvrtc.nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize(\(name))")
        var binary = [UInt8](repeating: 0, count: size)
        try binary.withUnsafeMutableBytes { bytes in
            try nvrtc.check(nvrtc.nvrtcGetCUBIN(program, bytes.baseAddress!.assumingMemoryBound(to: CChar.self)), "nvrtcGetCUBIN(\(name))")
        }
        return binary
    }
}
