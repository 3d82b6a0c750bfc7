extension CPUBackend {
    /// Float64 for float64 input, float32 otherwise: a reduction's result should not be rounded to 16 bits.
    private func reductionDType(_ dtype: DType) -> DType { dtype == .float64 ? .float64 : .float32 }

    /// Reduces all elements with per-thread partials accumulated in Double.
    private func reduce(
        _ x: Tensor, _ name: String, initial: Double,
        element: @escaping (Double) -> Double, combine: @escaping (Double, Double) -> Double
    ) throws -> Tensor {
        func run<T: CPUFloat>(_ type: T.Type) throws -> Double {
            try read(x, as: type, name) { p in
                let chunks = max(1, min(cpuThreadCount, x.count / (1 << 15)))
                var partials = [Double](repeating: initial, count: chunks)
                partials.withUnsafeMutableBufferPointer { partial in
                    let chunkSize = (x.count + chunks - 1) / chunks
                    parallelFor(chunks, grain: 1) { r in
                        for chunk in r {
                            var accumulator = initial
                            for i in (chunk * chunkSize)..<min(x.count, (chunk + 1) * chunkSize) {
                                accumulator = combine(accumulator, element(Double(p[i])))
                            }
                            partial[chunk] = accumulator
                        }
                    }
                }
                return partials.reduce(initial, combine)
            }
        }
        let value = try (computeKind(for: x.dtype, operation: name) == .double ? run(Double.self) : run(Float.self))
        return try tensor([value], shape: [1], dtype: reductionDType(x.dtype))
    }

    public func sum(_ x: Tensor) throws -> Tensor {
        try reduce(x, "sum", initial: 0, element: { $0 }, combine: +)
    }

    public func sumOfSquares(_ x: Tensor) throws -> Tensor {
        try reduce(x, "sumOfSquares", initial: 0, element: { $0 * $0 }, combine: +)
    }

    public func maxAbsolute(_ x: Tensor) throws -> Tensor {
        try reduce(x, "maxAbsolute", initial: 0, element: { abs($0) }, combine: { $0.isNaN || $1.isNaN ? .nan : max($0, $1) })
    }

    public func sumRows(_ x: Tensor) throws -> Tensor {
        let (rows, columns) = try x.asMatrix(operation: "sumRows")
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try read(x, as: type, "sumRows") { p in
                try produce([columns], dtype: x.dtype, as: type) { out in
                    parallelFor(columns, grain: 256) { r in
                        for row in 0..<rows {
                            let line = p + row * columns
                            for j in r { out[j] += line[j] }
                        }
                    }
                }
            }
        }
        return try (computeKind(for: x.dtype, operation: "sumRows") == .double ? run(Double.self) : run(Float.self))
    }
}
