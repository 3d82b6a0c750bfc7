import SlopeCore

extension CUDABackend {
    public func softmax(_ x: Tensor) throws -> Tensor {
        let (rows, columns) = try x.asMatrix(operation: "softmax")
        let out = try newTensor(x.shape, dtype: x.dtype)
        try launch(.normalization, "softmax_forward", dtype: x.dtype, grid: (rows, 1, 1), [
            .pointer(address(x, "softmax")), .pointer(address(out, "softmax")), .int64(Int64(rows)), .int64(Int64(columns)),
        ])
        return out
    }

    public func softmaxBackward(output y: Tensor, gradient dy: Tensor) throws -> Tensor {
        guard y.shape == dy.shape else {
            throw TensorError.shapeMismatch(operation: "softmaxBackward", shapes: [y.shape, dy.shape], reason: "y and dy must match")
        }
        try OperandChecks.sameDType([y, dy], "softmaxBackward")
        let (rows, columns) = try y.asMatrix(operation: "softmaxBackward")
        let out = try newTensor(y.shape, dtype: y.dtype)
        try launch(.normalization, "softmax_backward", dtype: y.dtype, grid: (rows, 1, 1), [
            .pointer(address(y, "softmaxBackward")), .pointer(address(dy, "softmaxBackward")), .pointer(address(out, "softmaxBackward")),
            .int64(Int64(rows)), .int64(Int64(columns)),
        ])
        return out
    }

    /// With a residual, the add is fused: the kernel writes `x + residual` (returned as `sum`; the residual dropped
    /// first where asked) and normalises it.
    public func layerNorm(
        _ x: Tensor, adding residual: Tensor?, droppingResidual dropout: SeededDropout?, weight: Tensor, bias: Tensor, epsilon: Float
    ) throws -> LayerNormOutput {
        let (rows, columns) = try OperandChecks.layerNorm(x, weight: weight, bias: bias)
        try OperandChecks.residual(residual, like: x, "layerNorm")
        try OperandChecks.residualDropout(dropout, residual: residual, "layerNorm")
        if let residual, !fusions.contains(.residualNorm) {
            let sum = try add(x, dropout.map { try self.dropout(residual, probability: $0.probability, seed: $0.seed) } ?? residual)
            let output = try layerNorm(sum, adding: nil, weight: weight, bias: bias, epsilon: epsilon)
            return LayerNormOutput(output: output.output, mean: output.mean, reciprocalStd: output.reciprocalStd, sum: sum)
        }
        let out = try newTensor(x.shape, dtype: x.dtype)
        let sum = try residual.map { _ in try newTensor(x.shape, dtype: x.dtype) }
        let mean = try newTensor([rows], dtype: .float32)
        let rstd = try newTensor([rows], dtype: .float32)
        let operation = "layerNorm"
        try launch(.normalization, "layernorm_forward", dtype: x.dtype, grid: (rows, 1, 1), block: normBlock(columns: columns, elementBytes: x.dtype.byteSize), [
            .pointer(address(x, operation)), .optionalPointer(address(ifAny: residual, operation)), .optionalPointer(address(ifAny: sum, operation)),
            .pointer(address(weight, operation)), .pointer(address(bias, operation)), .pointer(address(out, operation)),
            .pointer(address(mean, operation)), .pointer(address(rstd, operation)), .int64(Int64(rows)), .int64(Int64(columns)),
            .float(epsilon),
        ] + Self.dropoutArguments(dropout))
        return LayerNormOutput(output: out, mean: mean, reciprocalStd: rstd, sum: sum)
    }

    public func layerNormBackward(
        _ dy: Tensor, input x: Tensor, weight: Tensor, saved: LayerNormOutput, addingGradient residualGradient: Tensor?,
        droppingInputGradient dropout: SeededDropout?
    ) throws -> LayerNormGradients {
        let (rows, columns) = try OperandChecks.layerNormBackward(dy, input: x, weight: weight, saved: saved)
        let operation = "layerNormBackward"
        try OperandChecks.residual(residualGradient, like: x, operation)
        if let dropout { try DropoutMask.check(dropout.probability, operation) }
        if let residualGradient, !fusions.contains(.residualNorm) {
            let gradients = try layerNormBackward(dy, input: x, weight: weight, saved: saved, addingGradient: nil)
            try accumulate(residualGradient, into: gradients.input, alpha: 1)
            return LayerNormGradients(
                input: gradients.input, weight: gradients.weight, bias: gradients.bias,
                droppedInput: try dropout.map { try self.dropout(gradients.input, probability: $0.probability, seed: $0.seed) })
        }
        let dx = try newTensor(x.shape, dtype: x.dtype)
        let dropped = try dropout.map { _ in try newTensor(x.shape, dtype: x.dtype) }
        let dweight = try newTensor([columns], dtype: x.dtype)
        let dbias = try newTensor([columns], dtype: x.dtype)
        try launch(.normalization, "layernorm_backward_input", dtype: x.dtype, grid: (rows, 1, 1), block: normBlock(columns: columns, elementBytes: x.dtype.byteSize), [
            .pointer(address(dy, operation)), .pointer(address(x, operation)), .pointer(address(weight, operation)),
            .pointer(address(saved.mean, operation)), .pointer(address(saved.reciprocalStd, operation)),
            .optionalPointer(address(ifAny: residualGradient, operation)), .pointer(address(dx, operation)),
            .int64(Int64(rows)), .int64(Int64(columns)), .optionalPointer(address(ifAny: dropped, operation)),
        ] + Self.dropoutArguments(dropout))
        let chunks = Self.columnSumChunks(rows: rows)
        let partialWeight = try newTensor([chunks.count, columns], dtype: .float32)
        let partialBias = try newTensor([chunks.count, columns], dtype: .float32)
        try launch(.normalization, "layernorm_backward_params_partial", dtype: x.dtype, grid: ((columns + 31) / 32, chunks.count, 1), block: (32, 8, 1), [
            .pointer(address(dy, operation)), .pointer(address(x, operation)), .pointer(address(saved.mean, operation)),
            .pointer(address(saved.reciprocalStd, operation)), .pointer(address(partialWeight, operation)), .pointer(address(partialBias, operation)),
            .int64(Int64(rows)), .int64(Int64(columns)), .int64(Int64(chunks.rows)),
        ])
        try sumPartials(partialWeight, into: dweight)
        try sumPartials(partialBias, into: dbias)
        return LayerNormGradients(input: dx, weight: dweight, bias: dbias, droppedInput: dropped)
    }
}
