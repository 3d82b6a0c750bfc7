import CCUDA
import SlopeCore

extension CUDABackend {
    public func gemm(
        _ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool,
        alpha: Float, beta: Float, into c: Tensor?, bias: Tensor?
    ) throws -> Tensor {
        let shape = try OperandChecks.gemm(a, b, transposeA: transposeA, transposeB: transposeB, c: c, bias: bias)
        if !transposeA, transposeB, c == nil, alpha == 1, let skinny = try routedSkinnyDenseGEMM(a, b, bias: bias, relu: false) { return skinny }
        return try cublasGEMM(a, b, shape, transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: beta, into: c, bias: bias)
    }

    /// ``gemm(_:_:transposeA:transposeB:alpha:beta:into:bias:)`` on cuBLASLt, whatever the shape (`shape`: the
    /// operands' checked sizes).
    func cublasGEMM(
        _ a: Tensor, _ b: Tensor, _ shape: OperandChecks.GEMMShape, transposeA: Bool, transposeB: Bool,
        alpha: Float, beta: Float, into c: Tensor?, bias: Tensor?
    ) throws -> Tensor {
        let (m, n, k) = (shape.m, shape.n, shape.k)
        let output = try c ?? newTensor(shape.resultShape, dtype: a.dtype)
        try touch(output)
        if k == 0 {  // an empty product: C = beta·C + bias
            try scaleInPlace(output, by: c == nil ? 0 : Double(beta))
            if let bias { try addBias(bias, to: output) }
            return output
        }
        try blas.run(
            m: m, n: n, k: k, transA: transposeA, transB: transposeB, dtype: a.dtype, alpha: alpha,
            a: address(a, "gemm"), b: address(b, "gemm"), beta: c == nil ? 0 : beta, c: address(output, "gemm"),
            bias: bias.map { try address($0, "gemm") })
        return output
    }

    /// ReLU after a linear layer runs in the GEMM's epilogue (cuBLASLt `RELU_BIAS`; the `activation-epilogue`
    /// fusion): the output is written once, already activated, instead of written, read and written again. ReLU
    /// commutes with rounding to the output type, so the result is the composed one bit for bit (but for a NaN,
    /// which the epilogue's max turns into 0). Other activations, or a layout cuBLASLt has no such algorithm for,
    /// run composed.
    public func linearActivated(_ x: Tensor, weight: Tensor, bias: Tensor?, _ kind: Activation) throws -> Tensor {
        let shape = try OperandChecks.gemm(x, weight, transposeA: false, transposeB: true, c: nil, bias: bias)
        if kind == .relu, fusions.contains(.activationEpilogue), let skinny = try routedSkinnyDenseGEMM(x, weight, bias: bias, relu: true) { return skinny }
        let key = CuBLASLtGEMM.Key(m: shape.m, n: shape.n, k: shape.k, transA: false, transB: true, dtype: x.dtype, epilogue: bias == nil ? .relu : .reluBias)
        guard kind == .relu, fusions.contains(.activationEpilogue), shape.k > 0, blas.supports(key) else {
            return try activation(gemm(x, weight, transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: bias), kind)
        }
        let output = try newTensor(shape.resultShape, dtype: x.dtype)
        try touch(output)
        try blas.run(key, alpha: 1, a: address(x, "linearActivated"), b: address(weight, "linearActivated"), beta: 0,
                     c: address(output, "linearActivated"), bias: bias.map { try address($0, "linearActivated") })
        return output
    }

    /// The bias gradient comes out of the weight-gradient GEMM's epilogue (cuBLASLt's `BGRADB`) into a scratch
    /// vector that is then added to `biasGradient` (the epilogue overwrites; gradients accumulate): one small
    /// add instead of a pass over `dy`. Without `fusions`, or where cuBLASLt offers no such algorithm, the
    /// unfused GEMM and column sum run.
    public func linearWeightGradient(outputGradient dy: Tensor, input x: Tensor, into weightGradient: Tensor?, biasGradient: Tensor?) throws -> Tensor {
        let shape = try OperandChecks.gemm(dy, x, transposeA: true, transposeB: false, c: weightGradient, bias: nil)
        let key = CuBLASLtGEMM.Key(m: shape.m, n: shape.n, k: shape.k, transA: true, transB: false, dtype: dy.dtype, epilogue: .biasGradient)
        guard fusions.contains(.biasGradient), let biasGradient, biasGradient.count == shape.m, biasGradient.dtype == dy.dtype, shape.k > 0, shape.n > 0,
              blas.supports(key) else {
            return try unfusedLinearWeightGradient(outputGradient: dy, input: x, into: weightGradient, biasGradient: biasGradient)
        }
        let operation = "linearWeightGradient"
        let output = try weightGradient ?? newTensor(shape.resultShape, dtype: dy.dtype)
        try touch(output)
        let sums = try newTensor([shape.m], dtype: dy.dtype)
        try blas.run(
            key, alpha: 1, a: address(dy, operation), b: address(x, operation), beta: weightGradient == nil ? 0 : 1,
            c: address(output, operation), bias: address(sums, operation))
        try accumulate(sums, into: biasGradient, alpha: 1)
        return output
    }

    public func transpose(_ x: Tensor) throws -> Tensor {
        guard x.rank == 2 else {
            throw TensorError.shapeMismatch(operation: "transpose", shapes: [x.shape], reason: "expected a matrix")
        }
        let (rows, columns) = (x.shape[0], x.shape[1])
        let result = try newTensor([columns, rows], dtype: x.dtype)
        if x.dtype == .uint8 {
            try launch(.bytes, "transpose_u8", dtype: .float32, grid: ((columns + 31) / 32, (rows + 31) / 32, 1), block: (32, 8, 1), [
                .pointer(address(x, "transpose")), .pointer(address(result, "transpose")), .int64(Int64(rows)), .int64(Int64(columns)),
            ])
            return result
        }
        try launch(.layout, "transpose", dtype: x.dtype, grid: ((columns + 31) / 32, (rows + 31) / 32, 1), block: (32, 8, 1), [
            .pointer(address(x, "transpose")), .pointer(address(result, "transpose")), .int64(Int64(rows)), .int64(Int64(columns)),
        ])
        return result
    }

    public func concatenateRows(_ tensors: [Tensor]) throws -> Tensor {
        guard let first = tensors.first, tensors.allSatisfy({ $0.rank == 2 && $0.shape[1] == first.shape.last }) else {
            throw TensorError.shapeMismatch(operation: "concatenateRows", shapes: tensors.map(\.shape), reason: "expected matrices with equal column counts")
        }
        try OperandChecks.sameDType(tensors, "concatenateRows")
        let result = try newTensor([tensors.map { $0.shape[0] }.reduce(0, +), first.shape[1]], dtype: first.dtype)
        var offset = 0
        for tensor in tensors where tensor.byteCount > 0 {
            try copyBytes(from: address(tensor, "concatenateRows"), to: address(result, "concatenateRows") + UInt64(offset), count: tensor.byteCount)
            offset += tensor.byteCount
        }
        return result
    }

    /// Three blocks a launch (`split_columns`), so a stacked q/k/v projection comes apart in one.
    public func splitColumns(_ x: Tensor, widths: [Int]) throws -> [Tensor] {
        try OperandChecks.splitColumns(x, widths: widths)
        return try launchSplitColumns(x, widths: widths, destinations: widths.map { _ in nil }, rows: nil).map { $0! }
    }

    public func splitColumns(_ x: Tensor, widths: [Int], scatteringInto destinations: [Tensor?], rows: Tensor) throws -> [Tensor?] {
        try OperandChecks.splitColumns(x, widths: widths, scatteringInto: destinations, rows: rows)
        return try launchSplitColumns(x, widths: widths, destinations: destinations, rows: rows)
    }

    /// The parts not scattered as new tensors (nil for the others), `split_columns` launched for each three.
    private func launchSplitColumns(_ x: Tensor, widths: [Int], destinations: [Tensor?], rows: Tensor?) throws -> [Tensor?] {
        let count = x.shape[0]
        let parts = try zip(widths, destinations).map { width, destination in destination == nil ? try newTensor([count, width], dtype: x.dtype) : nil }
        for destination in destinations.compactMap({ $0 }) { try touch(destination) }
        let operation = "splitColumns"
        var first = 0
        for group in stride(from: 0, to: widths.count, by: 3) {
            let members = Array(group..<(group + 3))
            let groupWidths = members.map { $0 < widths.count ? widths[$0] : 0 }
            defer { first += groupWidths.reduce(0, +) }
            guard count > 0, groupWidths.reduce(0, +) > 0 else { continue }
            var arguments: [KernelArgument] = [.pointer(try address(x, operation))]
            var scattered: Int32 = 0
            for (slot, i) in members.enumerated() {
                let target = i < widths.count && widths[i] > 0 ? parts[i] ?? destinations[i] : nil
                if i < widths.count, parts[i] == nil, target != nil { scattered |= 1 << slot }
                arguments.append(.optionalPointer(try target.map { try address($0, operation) }))
            }
            arguments += [.optionalPointer(try rows.map { try address($0, operation) }), .int64(Int64(count)), .int64(Int64(x.shape[1])),
                          .int64(Int64(first))] + groupWidths.map { .int64(Int64($0)) } + [.int32(scattered)]
            try launch(.layout, "split_columns", dtype: x.dtype, grid: (min(count, 65_535), 1, 1), arguments)
        }
        return parts
    }

    public func copyRows(_ source: Tensor, _ rows: Range<Int>, into destination: Tensor, at row: Int) throws {
        let rowBytes = try OperandChecks.copyRows(source, rows, into: destination, at: row)
        guard !rows.isEmpty, rowBytes > 0 else { return }
        try touch(destination)
        try copyBytes(
            from: address(source, "copyRows") + UInt64(rows.lowerBound * rowBytes), to: address(destination, "copyRows") + UInt64(row * rowBytes),
            count: rows.count * rowBytes)
    }
}
