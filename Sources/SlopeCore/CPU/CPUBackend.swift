import CSlopeCPU

/// The reference backend: multithreaded, cache-blocked and SIMD-vectorised, using no system libraries.
///
/// It is the numerical reference the CUDA backend is checked against, and runs everything on machines
/// without a GPU. Float32/16/bf16 compute in Float, float64 in Double.
public final class CPUBackend: Backend {
    /// Whether ``record(_:)`` gives work back to be replayed by running it again (tests of the code that records
    /// decode steps); otherwise it records nothing, and callers run their work as it comes.
    public let recordsWork: Bool

    public init(recordsWork: Bool = false) {
        self.recordsWork = recordsWork
    }

    public func record(_ work: @escaping () throws -> Tensor) throws -> (any RecordedWork)? {
        recordsWork ? ClosureReplay(work) : nil
    }

    public var device: Device { .cpu }

    public var name: String { "cpu (\(cpuThreadCount) threads, \(Self.simdLevel))" }

    /// Instruction sets the CPU kernels can use, best last.
    public enum SIMDLevel: Int, Sendable, CaseIterable, CustomStringConvertible {
        case scalar = 0, avx2 = 1, avx512 = 2
        public var description: String { ["scalar", "AVX2", "AVX-512"][rawValue] }
    }

    /// The level in use: the best the processor supports unless ``useSIMDLevel(_:)`` lowered it.
    public static var simdLevel: SIMDLevel { SIMDLevel(rawValue: Int(slope_cpu_isa())) ?? .scalar }

    /// Caps the kernels at `level` (tests and benchmarks compare levels); `nil` goes back to automatic.
    public static func useSIMDLevel(_ level: SIMDLevel?) {
        slope_cpu_force_isa(Int32(level?.rawValue ?? -1))
    }

    /// Worker threads (`SLOPE_NUM_THREADS`, else all online cores).
    public static var threadCount: Int { cpuThreadCount }

    public var memoryStatistics: MemoryStatistics { HostStorage.statistics }

    public var memoryCapacity: Int? { HostMemory.physicalBytes }

    // MARK: Access helpers shared by the op files

    /// The host memory behind `tensor`, or `wrongDevice` if it lives elsewhere.
    func hostPointer(_ tensor: Tensor, _ operation: String) throws -> UnsafeMutableRawPointer {
        try host(tensor, operation).pointer
    }

    /// The host storage object behind `tensor`.
    func host(_ tensor: Tensor, _ operation: String) throws -> HostStorage {
        guard let storage = tensor.storage as? HostStorage else {
            throw TensorError.wrongDevice(operation: operation, expected: .cpu, actual: tensor.device)
        }
        return storage
    }

    func newTensor(_ shape: [Int], dtype: DType) throws -> Tensor {
        guard let bytes = CheckedSize.product(shape + [dtype.byteSize]) else {
            throw TensorError.invalidArgument(operation: "allocate", reason: "shape \(shape) is negative or too large to count")
        }
        return Tensor(shape: shape, dtype: dtype, storage: try HostStorage(byteCount: bytes))
    }

    /// Reads a float tensor as `T` without copying when the storage already is `T`.
    func read<T: CPUFloat, R>(
        _ tensor: Tensor, as _: T.Type, _ operation: String, _ body: (UnsafePointer<T>) throws -> R
    ) throws -> R {
        let raw = try hostPointer(tensor, operation)
        guard tensor.dtype.isFloatingPoint else {
            throw TensorError.unsupportedDType(operation: operation, dtype: tensor.dtype)
        }
        if tensor.dtype == T.storageDType {
            return try body(UnsafePointer(raw.assumingMemoryBound(to: T.self)))
        }
        let converted = UnsafeMutablePointer<T>.allocate(capacity: max(tensor.count, 1))
        defer { converted.deallocate() }
        loadElements(raw, dtype: tensor.dtype, count: tensor.count, into: converted)
        return try body(converted)
    }

    /// Lets `body` update a float tensor in place as `T`, converting back when the storage is narrower.
    func modify<T: CPUFloat>(
        _ tensor: Tensor, as _: T.Type, _ operation: String, _ body: (UnsafeMutablePointer<T>) throws -> Void
    ) throws {
        let raw = try hostPointer(tensor, operation)
        guard tensor.dtype.isFloatingPoint else {
            throw TensorError.unsupportedDType(operation: operation, dtype: tensor.dtype)
        }
        if tensor.dtype == T.storageDType {
            return try body(raw.assumingMemoryBound(to: T.self))
        }
        let converted = UnsafeMutablePointer<T>.allocate(capacity: max(tensor.count, 1))
        defer { converted.deallocate() }
        loadElements(raw, dtype: tensor.dtype, count: tensor.count, into: converted)
        try body(converted)
        storeElements(converted, count: tensor.count, into: raw, dtype: tensor.dtype)
    }

    /// A new tensor of `dtype` whose elements `body` writes as `T`.
    func produce<T: CPUFloat>(
        _ shape: [Int], dtype: DType, as type: T.Type, _ body: (UnsafeMutablePointer<T>) throws -> Void
    ) throws -> Tensor {
        let result = try newTensor(shape, dtype: dtype)
        try modify(result, as: type, "produce", body)
        return result
    }

    // MARK: Memory

    public func zeros(_ shape: [Int], dtype: DType) throws -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.invalidArgument(operation: "zeros", reason: "negative dimension in \(shape)")
        }
        return try newTensor(shape, dtype: dtype)
    }

    private func checkCount(_ count: Int, _ shape: [Int], _ operation: String) throws {
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == count else {
            throw TensorError.invalidArgument(operation: operation, reason: "\(count) values do not fill shape \(shape)")
        }
    }

    public func tensor(_ values: [Float], shape: [Int], dtype: DType) throws -> Tensor {
        try checkCount(values.count, shape, "tensor")
        let result = try newTensor(shape, dtype: dtype)
        let raw = result.storage as! HostStorage
        values.withUnsafeBufferPointer { storeElements($0.baseAddress!, count: values.count, into: raw.pointer, dtype: dtype) }
        return result
    }

    public func tensor(_ values: [Double], shape: [Int], dtype: DType) throws -> Tensor {
        try checkCount(values.count, shape, "tensor")
        let result = try newTensor(shape, dtype: dtype)
        let raw = result.storage as! HostStorage
        values.withUnsafeBufferPointer { storeElements($0.baseAddress!, count: values.count, into: raw.pointer, dtype: dtype) }
        return result
    }

    public func tensor(_ values: [Int32], shape: [Int]) throws -> Tensor {
        try checkCount(values.count, shape, "tensor")
        let result = try newTensor(shape, dtype: .int32)
        (result.storage as! HostStorage).pointer.copyMemory(from: values, byteCount: values.count * 4)
        return result
    }

    public func tensor(_ values: [UInt8], shape: [Int]) throws -> Tensor {
        try checkCount(values.count, shape, "tensor")
        let result = try newTensor(shape, dtype: .uint8)
        (result.storage as! HostStorage).pointer.copyMemory(from: values, byteCount: values.count)
        return result
    }

    public func floats(_ tensor: Tensor) throws -> [Float] {
        let raw = try hostPointer(tensor, "floats")
        return [Float](unsafeUninitializedCapacity: tensor.count) { buffer, count in
            loadElements(raw, dtype: tensor.dtype, count: tensor.count, into: buffer.baseAddress!)
            count = tensor.count
        }
    }

    public func doubles(_ tensor: Tensor) throws -> [Double] {
        let raw = try hostPointer(tensor, "doubles")
        return [Double](unsafeUninitializedCapacity: tensor.count) { buffer, count in
            loadElements(raw, dtype: tensor.dtype, count: tensor.count, into: buffer.baseAddress!)
            count = tensor.count
        }
    }

    public func int32s(_ tensor: Tensor) throws -> [Int32] {
        try OperandChecks.dtype(tensor, .int32, "int32s")
        let raw = try hostPointer(tensor, "int32s")
        return Array(UnsafeBufferPointer(start: raw.assumingMemoryBound(to: Int32.self), count: tensor.count))
    }

    public func uint8s(_ tensor: Tensor) throws -> [UInt8] {
        try OperandChecks.dtype(tensor, .uint8, "uint8s")
        let raw = try hostPointer(tensor, "uint8s")
        return Array(UnsafeBufferPointer(start: raw.assumingMemoryBound(to: UInt8.self), count: tensor.count))
    }

    public func cast(_ tensor: Tensor, to dtype: DType) throws -> Tensor {
        let result = try newTensor(tensor.shape, dtype: dtype)
        try copy(tensor, into: result)
        return result
    }

    public func copy(_ source: Tensor, into destination: Tensor) throws {
        guard source.count == destination.count else {
            throw TensorError.shapeMismatch(
                operation: "copy", shapes: [source.shape, destination.shape], reason: "element counts differ")
        }
        let from = try hostPointer(source, "copy")
        let to = try hostPointer(destination, "copy")
        if source.dtype == destination.dtype {
            to.copyMemory(from: from, byteCount: source.byteCount)
        } else if source.dtype == .float64 || destination.dtype == .float64 {
            let buffer = UnsafeMutablePointer<Double>.allocate(capacity: max(source.count, 1))
            defer { buffer.deallocate() }
            loadElements(from, dtype: source.dtype, count: source.count, into: buffer)
            storeElements(buffer, count: source.count, into: to, dtype: destination.dtype)
        } else {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(source.count, 1))
            defer { buffer.deallocate() }
            loadElements(from, dtype: source.dtype, count: source.count, into: buffer)
            storeElements(buffer, count: source.count, into: to, dtype: destination.dtype)
        }
    }

    public func fill(_ tensor: Tensor, with value: Double) throws {
        let raw = try hostPointer(tensor, "fill")
        var element = value
        let one = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
        defer { one.deallocate() }
        storeElements(&element, count: 1, into: one, dtype: tensor.dtype)
        let size = tensor.dtype.byteSize
        for i in 0..<tensor.count { (raw + i * size).copyMemory(from: one, byteCount: size) }
    }
}
