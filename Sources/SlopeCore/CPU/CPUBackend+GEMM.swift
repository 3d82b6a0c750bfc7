import CSlopeCPU

extension CPUBackend {
    public func gemm(
        _ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool,
        alpha: Float, beta: Float, into c: Tensor?, bias: Tensor?
    ) throws -> Tensor {
        let shape = try OperandChecks.gemm(a, b, transposeA: transposeA, transposeB: transposeB, c: c, bias: bias)
        let output = try c ?? newTensor(shape.resultShape, dtype: a.dtype)
        let beta = c == nil ? 0 : beta
        func run<T: CPUFloat>(_ type: T.Type) throws {
            try read(a, as: type, "gemm") { pa in
                try read(b, as: type, "gemm") { pb in
                    try modify(output, as: type, "gemm") { pc in
                        let lda = transposeA ? shape.m : shape.k
                        let ldb = transposeB ? shape.k : shape.n
                        if let bias {
                            try read(bias, as: type, "gemm") { pbias in
                                gemmKernel(transposeA, transposeB, shape, alpha, pa, lda, pb, ldb, beta, pc, pbias)
                            }
                        } else {
                            gemmKernel(transposeA, transposeB, shape, alpha, pa, lda, pb, ldb, beta, pc, nil)
                        }
                    }
                }
            }
        }
        try (computeKind(for: a.dtype, operation: "gemm") == .double ? run(Double.self) : run(Float.self))
        return output
    }

    /// Splits C by rows (or by columns when it has few rows) across threads; each piece is an independent GEMM.
    private func gemmKernel<T: CPUFloat>(
        _ transA: Bool, _ transB: Bool, _ s: OperandChecks.GEMMShape, _ alpha: Float,
        _ a: UnsafePointer<T>, _ lda: Int, _ b: UnsafePointer<T>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<T>, _ bias: UnsafePointer<T>?
    ) {
        let work = s.m * s.n * max(s.k, 1)
        let splitRows = s.m >= s.n || s.m >= 64
        let extent = splitRows ? s.m : s.n
        let grain = work < 1 << 17 ? extent : max(16, extent / (cpuThreadCount * 4))
        parallelFor(extent, grain: grain) { range in
            let (m0, m1, n0, n1) = splitRows ? (range.lowerBound, range.upperBound, 0, s.n) : (0, s.m, range.lowerBound, range.upperBound)
            let aPiece = a + (transA ? m0 : m0 * lda)
            let bPiece = b + (transB ? n0 * ldb : n0)
            let cPiece = c + m0 * s.n + n0
            let biasPiece = bias.map { $0 + n0 }
            rawGEMM(transA, transB, m1 - m0, n1 - n0, s.k, T(alpha), aPiece, lda, bPiece, ldb, T(beta), cPiece, s.n, biasPiece)
        }
    }

    public func concatenateRows(_ tensors: [Tensor]) throws -> Tensor {
        guard let first = tensors.first, tensors.allSatisfy({ $0.rank == 2 && $0.shape[1] == first.shape.last }) else {
            throw TensorError.shapeMismatch(
                operation: "concatenateRows", shapes: tensors.map(\.shape), reason: "expected matrices with equal column counts")
        }
        try OperandChecks.sameDType(tensors, "concatenateRows")
        let result = try newTensor([tensors.map { $0.shape[0] }.reduce(0, +), first.shape[1]], dtype: first.dtype)
        var target = try hostPointer(result, "concatenateRows")
        for tensor in tensors {
            target.copyMemory(from: try hostPointer(tensor, "concatenateRows"), byteCount: tensor.byteCount)
            target += tensor.byteCount
        }
        return result
    }

    public func splitColumns(_ x: Tensor, widths: [Int]) throws -> [Tensor] {
        let rows = try OperandChecks.splitColumns(x, widths: widths)
        let (size, rowBytes) = (x.dtype.byteSize, x.shape[1] * x.dtype.byteSize)
        let input = try hostPointer(x, "splitColumns")
        var offset = 0
        return try widths.map { width in
            defer { offset += width * size }
            let part = try newTensor([rows, width], dtype: x.dtype)
            guard width > 0 else { return part }
            let output = try hostPointer(part, "splitColumns")
            for r in 0..<rows { (output + r * width * size).copyMemory(from: input + r * rowBytes + offset, byteCount: width * size) }
            return part
        }
    }

    public func copyRows(_ source: Tensor, _ rows: Range<Int>, into destination: Tensor, at row: Int) throws {
        let rowBytes = try OperandChecks.copyRows(source, rows, into: destination, at: row)
        guard !rows.isEmpty, rowBytes > 0 else { return }
        try (hostPointer(destination, "copyRows") + row * rowBytes).copyMemory(
            from: hostPointer(source, "copyRows") + rows.lowerBound * rowBytes, byteCount: rows.count * rowBytes)
    }

    public func moveRows(_ source: Tensor, from: [Int]?, into destination: Tensor, to: [Int]?) throws {
        let (count, width) = try OperandChecks.moveRows(source, from: from, into: destination, to: to)
        let rowBytes = width * source.dtype.byteSize
        let (input, output) = (try hostPointer(source, "moveRows"), try hostPointer(destination, "moveRows"))
        for r in 0..<count {
            (output + (to?[r] ?? r) * rowBytes).copyMemory(from: input + (from?[r] ?? r) * rowBytes, byteCount: rowBytes)
        }
    }

    public func transpose(_ x: Tensor) throws -> Tensor {
        guard x.rank == 2 else {
            throw TensorError.shapeMismatch(operation: "transpose", shapes: [x.shape], reason: "expected a matrix")
        }
        let (rows, columns) = (x.shape[0], x.shape[1])
        let result = try newTensor([columns, rows], dtype: x.dtype)
        let source = try hostPointer(x, "transpose")
        let target = try hostPointer(result, "transpose")
        let size = x.dtype.byteSize
        let tile = 32  // cache-sized blocks: both the reads and the writes stay within a few lines
        parallelFor((rows + tile - 1) / tile, grain: 8) { blocks in
            for rowBlock in blocks {
                let r0 = rowBlock * tile
                for c0 in stride(from: 0, to: columns, by: tile) {
                    for r in r0..<min(rows, r0 + tile) {
                        for c in c0..<min(columns, c0 + tile) {
                            (target + (c * rows + r) * size).copyMemory(from: source + (r * columns + c) * size, byteCount: size)
                        }
                    }
                }
            }
        }
        return result
    }
}

/// One single-threaded row-major GEMM piece: the SIMD C kernel for Float, the reference loop otherwise.
@inline(__always)
func rawGEMM<T: CPUFloat>(
    _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: T,
    _ a: UnsafePointer<T>, _ lda: Int, _ b: UnsafePointer<T>, _ ldb: Int,
    _ beta: T, _ c: UnsafeMutablePointer<T>, _ ldc: Int, _ bias: UnsafePointer<T>?
) {
    if T.self == Float.self {
        slope_sgemm(
            transA ? 1 : 0, transB ? 1 : 0, m, n, k, Float(alpha),
            UnsafeRawPointer(a).assumingMemoryBound(to: Float.self), lda,
            UnsafeRawPointer(b).assumingMemoryBound(to: Float.self), ldb, Float(beta),
            UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self), ldc,
            bias.map { UnsafeRawPointer($0).assumingMemoryBound(to: Float.self) })
    } else {
        referenceGEMM(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias)
    }
}

/// Straightforward row-major GEMM for non-Float compute types (Double, used by gradient checks):
/// `C[M,N] = alpha·op(A)·op(B) + beta·C + bias`.
func referenceGEMM<T: CPUFloat>(
    _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: T,
    _ a: UnsafePointer<T>, _ lda: Int, _ b: UnsafePointer<T>, _ ldb: Int,
    _ beta: T, _ c: UnsafeMutablePointer<T>, _ ldc: Int, _ bias: UnsafePointer<T>?
) {
    let row = UnsafeMutablePointer<T>.allocate(capacity: max(n, 1))
    defer { row.deallocate() }
    for i in 0..<m {
        row.initialize(repeating: 0, count: n)
        for p in 0..<k {
            let aip = transA ? a[p * lda + i] : a[i * lda + p]
            if transB {
                for j in 0..<n { row[j] += aip * b[j * ldb + p] }
            } else {
                let bRow = b + p * ldb
                for j in 0..<n { row[j] += aip * bRow[j] }
            }
        }
        let cRow = c + i * ldc
        for j in 0..<n {
            let previous = beta == 0 ? 0 : beta * cRow[j]
            cRow[j] = alpha * row[j] + previous + (bias?[j] ?? 0)
        }
    }
}
