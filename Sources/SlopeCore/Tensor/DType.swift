/// Element types a tensor can store.
///
/// CPU compute happens in `Float` (for float32, float16 and bfloat16 storage) or `Double` (float64);
/// half-precision values are converted with round-to-nearest-even on the way in and out.
public enum DType: String, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case float32
    case float64
    case float16
    case bfloat16
    case int32
    case uint8

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .float64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16: return 2
        case .uint8: return 1
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float64, .float16, .bfloat16: return true
        case .int32, .uint8: return false
        }
    }

    public var description: String { rawValue }
}
