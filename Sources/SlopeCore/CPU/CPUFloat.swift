import RealModule

/// The scalar types the CPU backend computes in: `Float` (for float32, float16 and bfloat16 storage)
/// and `Double` (float64 storage, used by gradient checks).
public protocol CPUFloat: BinaryFloatingPoint, Real, Sendable {
    static var storageDType: DType { get }
}

extension Float: CPUFloat {
    public static var storageDType: DType { .float32 }
}

extension Double: CPUFloat {
    public static var storageDType: DType { .float64 }
}

/// Which scalar type a float dtype computes in. Ops branch on it and call their generic body with a
/// concrete type, so the optimizer specialises the body (a body called through an opened existential
/// type would run every arithmetic operation through witness tables).
enum ComputeKind { case float, double }

func computeKind(for dtype: DType, operation: String) throws -> ComputeKind {
    switch dtype {
    case .float64: return .double
    case .float32, .float16, .bfloat16: return .float
    case .int32, .uint8: throw TensorError.unsupportedDType(operation: operation, dtype: dtype)
    }
}

/// Converts `count` stored elements of `dtype` at `source` into `T`.
@inline(__always)
func loadElements<T: CPUFloat>(_ source: UnsafeRawPointer, dtype: DType, count: Int, into target: UnsafeMutablePointer<T>) {
    switch dtype {
    case .float32:
        let s = source.assumingMemoryBound(to: Float.self)
        for i in 0..<count { target[i] = T(s[i]) }
    case .float64:
        let s = source.assumingMemoryBound(to: Double.self)
        for i in 0..<count { target[i] = T(s[i]) }
    case .float16:
        let s = source.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { target[i] = T(float(fromFloat16: s[i])) }
    case .bfloat16:
        let s = source.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { target[i] = T(float(fromBFloat16: s[i])) }
    case .int32:
        let s = source.assumingMemoryBound(to: Int32.self)
        for i in 0..<count { target[i] = T(s[i]) }
    case .uint8:
        let s = source.assumingMemoryBound(to: UInt8.self)
        for i in 0..<count { target[i] = T(s[i]) }
    }
}

/// Converts `count` values of `T` into stored elements of `dtype` (round-to-nearest-even for narrower types).
@inline(__always)
func storeElements<T: CPUFloat>(_ source: UnsafePointer<T>, count: Int, into target: UnsafeMutableRawPointer, dtype: DType) {
    switch dtype {
    case .float32:
        let t = target.assumingMemoryBound(to: Float.self)
        for i in 0..<count { t[i] = Float(source[i]) }
    case .float64:
        let t = target.assumingMemoryBound(to: Double.self)
        for i in 0..<count { t[i] = Double(source[i]) }
    case .float16:
        let t = target.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { t[i] = float16Bits(from: Float(source[i])) }
    case .bfloat16:
        let t = target.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { t[i] = bfloat16Bits(from: Float(source[i])) }
    case .int32:
        let t = target.assumingMemoryBound(to: Int32.self)
        for i in 0..<count { t[i] = Int32(source[i].rounded()) }
    case .uint8:
        let t = target.assumingMemoryBound(to: UInt8.self)
        for i in 0..<count { t[i] = UInt8(source[i].rounded()) }
    }
}
