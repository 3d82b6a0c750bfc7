/// Where a tensor's memory lives.
public enum Device: Hashable, Sendable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let ordinal): return "cuda:\(ordinal)"
        }
    }
}
