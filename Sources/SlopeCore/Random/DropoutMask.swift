/// Which elements dropout keeps, as a pure function of a seed and the element's index, so the CPU and CUDA backends
/// drop the same elements and a backward pass recomputes the mask instead of storing it. SplitMix64's finaliser of
/// `seed + (index + 1)·φ`; the top 24 bits against `probability · 2²⁴`.
public enum DropoutMask {
    /// The threshold the hash's top 24 bits are compared with (kept when at least this).
    public static func threshold(probability: Double) -> UInt32 { UInt32((probability * 16_777_216).rounded()) }

    @inline(__always)
    public static func keeps(seed: UInt64, index: Int, threshold: UInt32) -> Bool {
        var z = seed &+ UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return UInt32(truncatingIfNeeded: z >> 40) >= threshold
    }

    /// Checks a dropout probability: in [0, 1).
    public static func check(_ probability: Double, _ operation: String) throws {
        guard probability >= 0, probability < 1 else {
            throw TensorError.invalidArgument(operation: operation, reason: "dropout probability must be in [0, 1), not \(probability)")
        }
    }
}

/// One dropout draw: the probability of dropping an element and the seed its mask comes from (``DropoutMask``), for
/// ops that drop inside another computation (attention probabilities, a residual branch before its norm).
public struct SeededDropout: Sendable, Equatable {
    public var probability: Double
    public var seed: UInt64

    public init(probability: Double, seed: UInt64) {
        self.probability = probability
        self.seed = seed
    }

    /// What a kept element is multiplied by.
    public var keptScale: Double { 1 / (1 - probability) }
    public var threshold: UInt32 { DropoutMask.threshold(probability: probability) }

    /// The factor element `index` is multiplied by: 0 or ``keptScale``.
    @inline(__always)
    public func factor(_ index: Int) -> Double { DropoutMask.keeps(seed: seed, index: index, threshold: threshold) ? keptScale : 0 }
}
