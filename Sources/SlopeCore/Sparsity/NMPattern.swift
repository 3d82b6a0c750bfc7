/// An N:M sparsity pattern: in every group of `m` consecutive elements at most `n` are kept.
///
/// 2:4 is what sparse tensor cores accelerate; 1:4, 2:8 and 4:8 are supported too (the GPU runs
/// 1:4 and 2:8 on the 2:4 kernels with explicit zeros).
public struct NMPattern: Hashable, Sendable, Codable, CustomStringConvertible {
    public let n: Int
    public let m: Int

    /// Group sizes the compressed format and kernels support.
    public static let supportedGroupSizes = [4, 8]

    public static let twoFour = NMPattern(uncheckedN: 2, m: 4)

    /// Throws ``TensorError/invalidPattern(n:m:reason:)`` unless `m` is 4 or 8 and `1 ≤ n < m`.
    public init(n: Int, m: Int) throws {
        guard Self.supportedGroupSizes.contains(m) else {
            throw TensorError.invalidPattern(n: n, m: m, reason: "M must be 4 or 8")
        }
        guard n >= 1, n < m else {
            throw TensorError.invalidPattern(n: n, m: m, reason: "N must satisfy 1 ≤ N < M")
        }
        self.n = n
        self.m = m
    }

    /// Parses "2:4".
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let n = Int(parts[0]), let m = Int(parts[1]) else {
            throw TensorError.invalidArgument(operation: "N:M pattern", reason: "expected N:M such as 2:4, got '\(text)'")
        }
        try self.init(n: n, m: m)
    }

    private init(uncheckedN n: Int, m: Int) {
        self.n = n
        self.m = m
    }

    /// Fraction of elements kept.
    public var density: Double { Double(n) / Double(m) }

    /// Number of kept slots in a row of `length` elements.
    public func keptCount(forLength length: Int) -> Int { length / m * n }

    /// Throws ``TensorError/notDivisible(operation:dimension:size:groupSize:)`` unless `m` divides `size`.
    public func checkDivisible(_ size: Int, dimension: String, operation: String) throws {
        guard size % m == 0 else {
            throw TensorError.notDivisible(operation: operation, dimension: dimension, size: size, groupSize: m)
        }
    }

    public var description: String { "\(n):\(m)" }
}

/// Which way the groups of M consecutive elements run in a matrix.
public enum PruneDirection: String, Sendable, Codable {
    /// Each row is cut into groups of M consecutive columns (W's forward mask Mr, along `din`).
    case rowWise
    /// Each column is cut into groups of M consecutive rows (the double-pruning mask Mc, along `dout`).
    case columnWise
}
