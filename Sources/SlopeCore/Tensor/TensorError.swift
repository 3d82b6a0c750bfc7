/// Errors raised by tensor operations. Each message says what was wrong and, where it helps, what to do.
public enum TensorError: Error, Equatable, CustomStringConvertible {
    /// Operand shapes that do not fit together.
    case shapeMismatch(operation: String, shapes: [[Int]], reason: String)
    /// Operands whose element types differ where they must agree.
    case dtypeMismatch(operation: String, dtypes: [DType])
    /// An element type the operation cannot work on.
    case unsupportedDType(operation: String, dtype: DType)
    /// A tensor on another device than the backend that was asked to use it.
    case wrongDevice(operation: String, expected: Device, actual: Device)
    /// An N:M pattern that is not allowed.
    case invalidPattern(n: Int, m: Int, reason: String)
    /// A dimension that cannot be split into groups of M.
    case notDivisible(operation: String, dimension: String, size: Int, groupSize: Int)
    /// Any other bad argument.
    case invalidArgument(operation: String, reason: String)
    /// An allocation the device could not satisfy.
    case outOfMemory(device: Device, requestedBytes: Int, heldBytes: Int)
    /// Work that needs more memory than the device has at all (``MemoryBudget``); nil bytes: more than an
    /// `Int` can count.
    case exceedsMemory(what: String, neededBytes: Int?, capacityBytes: Int, device: Device)

    public var description: String {
        switch self {
        case let .shapeMismatch(operation, shapes, reason):
            let list = shapes.map { "\($0)" }.joined(separator: ", ")
            return "\(operation): shapes \(list) do not fit: \(reason)"
        case let .dtypeMismatch(operation, dtypes):
            return "\(operation): element types \(dtypes.map(\.rawValue).joined(separator: ", ")) must be the same"
        case let .unsupportedDType(operation, dtype):
            return "\(operation): element type \(dtype) is not supported here"
        case let .wrongDevice(operation, expected, actual):
            return "\(operation): tensor is on \(actual) but this backend runs on \(expected); copy it first"
        case let .invalidPattern(n, m, reason):
            return "invalid N:M pattern \(n):\(m): \(reason)"
        case let .notDivisible(operation, dimension, size, groupSize):
            return "\(operation): \(dimension) of size \(size) is not divisible by M = \(groupSize); "
                + "choose a size that is a multiple of \(groupSize) or keep this layer dense"
        case let .invalidArgument(operation, reason):
            return "\(operation): \(reason)"
        case let .exceedsMemory(what, needed, capacity, device):
            let amount = needed.map { "about \(byteCountText($0))" } ?? "more bytes than can be counted"
            return "\(what) needs \(amount) but \(device) has \(byteCountText(capacity)) in all; "
                + "choose a smaller model, batch or sequence length (or check the sizes: one may be mistyped or damaged)"
        case let .outOfMemory(device, requested, held):
            return "out of memory on \(device): requested \(byteCountText(requested)) while \(byteCountText(held)) are held; "
                + "reduce the batch size or sequence length (training: or --recompute-activations)"
        }
    }
}
