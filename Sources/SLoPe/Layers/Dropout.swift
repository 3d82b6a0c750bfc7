/// Inverted dropout while training: active only while ``seed`` is set (the trainer sets a new one for every
/// forward pass), the identity otherwise — evaluation and inference never drop anything. The mask is a function of
/// the seed (``DropoutMask``), so backward recomputes it instead of keeping it, and a resumed run drops what the
/// uninterrupted one would have.
public final class Dropout: Module {
    public internal(set) var probability: Double
    /// The seed of the next forward pass's mask; nil: no dropout.
    public var seed: UInt64?
    private var savedSeed: UInt64?
    let backend: any Backend

    public init(probability: Double, backend: any Backend) throws {
        try DropoutMask.check(probability, "Dropout")
        self.probability = probability
        self.backend = backend
    }

    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor) throws -> Tensor {
        savedSeed = probability > 0 ? seed : nil
        guard let savedSeed else { return x }
        return try backend.dropout(x, probability: probability, seed: savedSeed)
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let savedSeed else { return dy }
        return try backend.dropout(dy, probability: probability, seed: savedSeed)
    }

    public func releaseActivations() {}

    /// This pass's draw for an op that drops inside its own pass (a norm's residual), recorded as ``forward(_:)``
    /// records it; nil where nothing is dropped.
    public func draw() -> SeededDropout? {
        savedSeed = probability > 0 ? seed : nil
        return savedDraw
    }

    /// The draw the last forward pass (or ``draw()``) used, for backward.
    public var savedDraw: SeededDropout? { savedSeed.map { SeededDropout(probability: probability, seed: $0) } }
}

extension DropoutMask {
    /// The seed of layer `layer` of a pass seeded `seed` (SplitMix64 of the two, so layers draw unrelated masks).
    public static func layerSeed(_ seed: UInt64, layer: Int) -> UInt64 {
        var z = seed &+ UInt64(layer + 1) &* 0xD1B5_4A32_D192_ED03
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
