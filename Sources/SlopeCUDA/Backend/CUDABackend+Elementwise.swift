import SlopeCore

extension CUDABackend {
    private func binary(_ a: Tensor, _ b: Tensor, _ op: Int32, _ name: String) throws -> Tensor {
        try OperandChecks.elementwise(a, b, name)
        let out = try newTensor(a.shape, dtype: a.dtype)
        try launch(.elementwise, "binary_op", dtype: a.dtype, grid: packedGrid(a.count, elementBytes: a.dtype.byteSize), [
            .pointer(address(a, name)), .pointer(address(b, name)), .pointer(address(out, name)), .int64(Int64(a.count)), .int32(op),
        ])
        return out
    }

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(a, b, 0, "add") }
    public func subtract(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(a, b, 1, "subtract") }
    public func multiply(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(a, b, 2, "multiply") }

    public func scale(_ x: Tensor, by factor: Double) throws -> Tensor {
        let out = try newTensor(x.shape, dtype: x.dtype)
        try launch(.elementwise, "scale", dtype: x.dtype, grid: packedGrid(x.count, elementBytes: x.dtype.byteSize), [
            .pointer(address(x, "scale")), .pointer(address(out, "scale")), .int64(Int64(x.count)), .float(Float(factor)),
        ])
        return out
    }

    public func scaleInPlace(_ x: Tensor, by factor: Double) throws {
        try touch(x)
        try launch(.elementwise, "scale", dtype: x.dtype, grid: packedGrid(x.count, elementBytes: x.dtype.byteSize), [
            .pointer(address(x, "scaleInPlace")), .pointer(address(x, "scaleInPlace")), .int64(Int64(x.count)), .float(Float(factor)),
        ])
    }

    public func accumulate(_ x: Tensor, into y: Tensor, alpha: Double) throws {
        guard x.count == y.count else {
            throw TensorError.shapeMismatch(operation: "accumulate", shapes: [x.shape, y.shape], reason: "element counts differ")
        }
        try OperandChecks.sameDType([x, y], "accumulate")
        try touch(y)
        try launch(.elementwise, "accumulate", dtype: y.dtype, grid: packedGrid(x.count, elementBytes: y.dtype.byteSize), [
            .pointer(address(x, "accumulate")), .pointer(address(y, "accumulate")), .int64(Int64(x.count)), .float(Float(alpha)),
        ])
    }

    public func trustRatioStep(_ x: Tensor, update: Tensor, parameterSquares: Tensor, updateSquares: Tensor, rate: Double) throws {
        let name = "trustRatioStep"
        guard x.count == update.count, parameterSquares.count == 1, updateSquares.count == 1 else {
            throw TensorError.shapeMismatch(
                operation: name, shapes: [x.shape, update.shape, parameterSquares.shape, updateSquares.shape],
                reason: "x and update of one size, the squares one-element tensors")
        }
        try OperandChecks.sameDType([x, update], name)
        try OperandChecks.dtype(parameterSquares, .float32, name)
        try OperandChecks.dtype(updateSquares, .float32, name)
        try touch(x)
        try launch(.elementwise, "trust_ratio_step", dtype: x.dtype, grid: elementwiseGrid(x.count), [
            .pointer(address(x, name)), .pointer(address(update, name)), .pointer(address(parameterSquares, name)),
            .pointer(address(updateSquares, name)), .int64(Int64(x.count)), .float(Float(rate)),
        ])
    }

    public func applyMask(_ x: Tensor, mask: Tensor) throws -> Tensor {
        try OperandChecks.dtype(mask, .uint8, "applyMask")
        guard mask.shape == x.shape else {
            throw TensorError.shapeMismatch(operation: "applyMask", shapes: [x.shape, mask.shape], reason: "mask must have x's shape")
        }
        let out = try newTensor(x.shape, dtype: x.dtype)
        try launch(.elementwise, "apply_mask", dtype: x.dtype, grid: elementwiseGrid(x.count), [
            .pointer(address(x, "applyMask")), .pointer(address(mask, "applyMask")), .pointer(address(out, "applyMask")), .int64(Int64(x.count)),
        ])
        return out
    }

    public func dropout(_ x: Tensor, probability: Double, seed: UInt64) throws -> Tensor {
        try DropoutMask.check(probability, "dropout")
        let out = try newTensor(x.shape, dtype: x.dtype)
        try launch(.elementwise, "dropout", dtype: x.dtype, grid: packedGrid(x.count, elementBytes: x.dtype.byteSize), [
            .pointer(address(x, "dropout")), .pointer(address(out, "dropout")), .int64(Int64(x.count)),
            .int64(Int64(bitPattern: seed)), .int32(Int32(DropoutMask.threshold(probability: probability))), .float(Float(1 / (1 - probability))),
        ])
        return out
    }

    private func activationCode(_ kind: Activation) -> Int32 {
        switch kind {
        case .gelu: return 0
        case .relu: return 1
        case .silu: return 2
        case .tanh: return 3
        case .geluExact: return 4
        }
    }

    public func activation(_ x: Tensor, _ kind: Activation) throws -> Tensor {
        let out = try newTensor(x.shape, dtype: x.dtype)
        try launch(.elementwise, "activation_forward", dtype: x.dtype, grid: packedGrid(x.count, elementBytes: x.dtype.byteSize), [
            .pointer(address(x, "activation")), .pointer(address(out, "activation")), .int64(Int64(x.count)), .int32(activationCode(kind)),
        ])
        return out
    }

    public func gatedActivation(gate: Tensor, up: Tensor, _ kind: Activation) throws -> Tensor {
        guard gate.shape == up.shape else {
            throw TensorError.shapeMismatch(operation: "gatedActivation", shapes: [gate.shape, up.shape], reason: "gate and up must match")
        }
        try OperandChecks.sameDType([gate, up], "gatedActivation")
        let out = try newTensor(gate.shape, dtype: gate.dtype)
        try launch(.elementwise, "gated_activation_forward", dtype: gate.dtype, grid: packedGrid(gate.count, elementBytes: gate.dtype.byteSize), [
            .pointer(address(gate, "gatedActivation")), .pointer(address(up, "gatedActivation")), .pointer(address(out, "gatedActivation")),
            .int64(Int64(gate.count)), .int32(activationCode(kind)),
        ])
        return out
    }

    public func gatedActivationBackward(gate: Tensor, up: Tensor, gradient dh: Tensor, _ kind: Activation) throws -> GatedActivationGradients {
        let operation = "gatedActivationBackward"
        guard gate.shape == up.shape, gate.shape == dh.shape else {
            throw TensorError.shapeMismatch(operation: operation, shapes: [gate.shape, up.shape, dh.shape], reason: "gate, up and dh must match")
        }
        try OperandChecks.sameDType([gate, up, dh], operation)
        let (dGate, dUp) = (try newTensor(gate.shape, dtype: gate.dtype), try newTensor(gate.shape, dtype: gate.dtype))
        try launch(.elementwise, "gated_activation_backward", dtype: gate.dtype, grid: packedGrid(gate.count, elementBytes: gate.dtype.byteSize), [
            .pointer(address(gate, operation)), .pointer(address(up, operation)), .pointer(address(dh, operation)),
            .pointer(address(dGate, operation)), .pointer(address(dUp, operation)), .int64(Int64(gate.count)), .int32(activationCode(kind)),
        ])
        return GatedActivationGradients(gate: dGate, up: dUp)
    }

    public func activationBackward(_ x: Tensor, gradient dy: Tensor, _ kind: Activation) throws -> Tensor {
        guard x.shape == dy.shape else {
            throw TensorError.shapeMismatch(operation: "activationBackward", shapes: [x.shape, dy.shape], reason: "x and dy must match")
        }
        try OperandChecks.sameDType([x, dy], "activationBackward")
        let out = try newTensor(x.shape, dtype: x.dtype)
        try launch(.elementwise, "activation_backward", dtype: x.dtype, grid: packedGrid(x.count, elementBytes: x.dtype.byteSize), [
            .pointer(address(x, "activationBackward")), .pointer(address(dy, "activationBackward")), .pointer(address(out, "activationBackward")),
            .int64(Int64(x.count)), .int32(activationCode(kind)),
        ])
        return out
    }
}
