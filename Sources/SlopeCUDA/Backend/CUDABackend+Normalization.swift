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

    public func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, epsilon: Float) throws -> LayerNormOutput {
        let (rows, columns) = try OperandChecks.layerNorm(x, weight: weight, bias: bias)
        let out = try newTensor(x.shape, dtype: x.dtype)
        let mean = try newTensor([rows], dtype: .float32)
        let rstd = try newTensor([rows], dtype: .float32)
        try launch(.normalization, "layernorm_forward", dtype: x.dtype, grid: (rows, 1, 1), [
            .pointer(address(x, "layerNorm")), .pointer(address(weight, "layerNorm")), .pointer(address(bias, "layerNorm")),
            .pointer(address(out, "layerNorm")), .pointer(address(mean, "layerNorm")), .pointer(address(rstd, "layerNorm")),
            .int64(Int64(rows)), .int64(Int64(columns)), .float(epsilon),
        ])
        return LayerNormOutput(output: out, mean: mean, reciprocalStd: rstd)
    }

    public func layerNormBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, saved: LayerNormOutput) throws -> LayerNormGradients {
        let (rows, columns) = try OperandChecks.layerNormBackward(dy, input: x, weight: weight, saved: saved)
        let dx = try newTensor(x.shape, dtype: x.dtype)
        let dweight = try newTensor([columns], dtype: x.dtype)
        let dbias = try newTensor([columns], dtype: x.dtype)
        let operation = "layerNormBackward"
        try launch(.normalization, "layernorm_backward_input", dtype: x.dtype, grid: (rows, 1, 1), [
            .pointer(address(dy, operation)), .pointer(address(x, operation)), .pointer(address(weight, operation)),
            .pointer(address(saved.mean, operation)), .pointer(address(saved.reciprocalStd, operation)), .pointer(address(dx, operation)),
            .int64(Int64(rows)), .int64(Int64(columns)),
        ])
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
        return LayerNormGradients(input: dx, weight: dweight, bias: dbias)
    }
}
