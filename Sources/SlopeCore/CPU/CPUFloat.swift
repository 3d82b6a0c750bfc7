import RealModule

/// The scalar types the CPU backend computes in: `Float` (for float32, float16 and bfloat16 storage)
/// and `Double` (float64 storage, used by gradient checks).
public protocol CPUFloat: BinaryFloatingPoint, Real, Sendable {
    static var storageDType: DType { get }
    /// `exp(x)` in straight-line code that loops over arrays can vectorise (no libm call); see `Float`'s.
    static func vectorExp(_ x: Self) -> Self
}

extension Float: CPUFloat {
    public static var storageDType: DType { .float32 }

    /// exp(x) within 2 ulp for x in [−87, 88] (clamped outside: ≈ 1.7e38 above, ≈ 1.2e−38 below; NaN stays
    /// NaN). x = n·ln2 + r with |r| ≤ ln2/2, e^r by its degree-6 Taylor polynomial, 2^n through the exponent
    /// bits. Only SSE2 operations (rounding by the 1.5·2^23 trick), so activation loops vectorise.
    @inline(__always)
    public static func vectorExp(_ x: Float) -> Float {
        let clamped = x < -87 ? -87 : (x > 88 ? 88 : x)
        let shifted = clamped * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        let r = (clamped - n * 0.693_145_75) - n * 1.428_606_8e-6
        var p: Float = 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        // n sits in the low mantissa bits of `shifted`: integer arithmetic on the bits (no trap on NaN).
        return p * Float(bitPattern: (shifted.bitPattern &- Float(12_582_912).bitPattern &+ 127) << 23)
    }
}

extension Double: CPUFloat {
    public static var storageDType: DType { .float64 }
    @inline(__always)
    public static func vectorExp(_ x: Double) -> Double { Double.exp(x) }
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
