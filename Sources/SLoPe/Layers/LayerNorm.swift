/// LayerNorm over the last dimension with a learned scale and shift.
public final class LayerNorm: Layer {
    public let weight: Parameter
    public let bias: Parameter
    public let epsilon: Float
    let backend: any Backend
    private var saved: (input: Tensor, output: LayerNormOutput)?

    public init(name: String = "ln", features: Int, epsilon: Float = 1e-5, dtype: DType = .float32, backend: any Backend) throws {
        self.backend = backend
        self.epsilon = epsilon
        weight = Parameter(name: "\(name).weight", value: try backend.tensor([Float](repeating: 1, count: features), shape: [features], dtype: dtype))
        bias = Parameter(name: "\(name).bias", value: try backend.zeros([features], dtype: dtype))
    }

    public var parameters: [Parameter] { [weight, bias] }

    // x [..., C] → y [..., C]
    public func forward(_ x: Tensor) throws -> Tensor {
        let output = try backend.layerNorm(x, weight: weight.value, bias: bias.value, epsilon: epsilon)
        saved = (x, output)
        return output.output
    }

    public func releaseActivations() { saved = nil }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let saved else {
            throw TensorError.invalidArgument(operation: "LayerNorm.backward", reason: "call forward first")
        }
        let gradients = try backend.layerNormBackward(dy, input: saved.input, weight: weight.value, saved: saved.output)
        try weight.accumulateGradient(gradients.weight, backend)
        try bias.accumulateGradient(gradients.bias, backend)
        return gradients.input
    }
}
