/// A lookup table `[vocabularySize, features]` indexed by `int32` token ids.
public final class Embedding: Layer {
    public let weight: Parameter
    let backend: any Backend
    private var savedIDs: Tensor?

    /// Initialised normal(0, std²) (GPT-2 uses 0.02).
    public init(
        name: String = "wte", vocabularySize: Int, features: Int, std: Double = 0.02, dtype: DType = .float32,
        backend: any Backend, generator: inout SeededGenerator
    ) throws {
        self.backend = backend
        weight = Parameter(
            name: "\(name).weight",
            value: try backend.randomNormal([vocabularySize, features], std: std, dtype: dtype, using: &generator))
    }

    public var parameters: [Parameter] { [weight] }

    // ids int32 [...] → [..., features]
    public func forward(_ ids: Tensor) throws -> Tensor {
        savedIDs = ids
        return try backend.embedding(weight.value, ids: ids)
    }

    public func backward(_ dy: Tensor) throws {
        guard let ids = savedIDs else {
            throw TensorError.invalidArgument(operation: "Embedding.backward", reason: "call forward first")
        }
        try backend.embeddingBackward(dy, ids: ids, into: weight.gradientBuffer(backend))
    }
}
