import SlopeCore
import XCTest

/// Asserts `|a − b| ≤ atol + rtol·|b|` elementwise and reports the worst element when it fails.
public func assertClose(
    _ actual: [Double], _ expected: [Double], rtol: Double = 1e-5, atol: Double = 1e-6,
    _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count else {
        XCTFail("\(message): \(actual.count) elements vs \(expected.count) expected", file: file, line: line)
        return
    }
    var worst = -1
    var worstExcess = 0.0
    for i in actual.indices {
        let allowed = atol + rtol * abs(expected[i])
        let excess = abs(actual[i] - expected[i]) - allowed
        if !(excess <= 0) && (worst < 0 || excess > worstExcess || excess.isNaN) {
            worst = i
            worstExcess = excess
        }
    }
    if worst >= 0 {
        XCTFail(
            "\(message): element \(worst) is \(actual[worst]), expected \(expected[worst]) (rtol \(rtol), atol \(atol))",
            file: file, line: line)
    }
}

public func assertClose(
    _ actual: [Float], _ expected: [Float], rtol: Double = 1e-5, atol: Double = 1e-6,
    _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) {
    assertClose(actual.map(Double.init), expected.map(Double.init), rtol: rtol, atol: atol, message, file: file, line: line)
}

/// Tensor comparison through the backend's host copy.
public func assertClose(
    _ actual: Tensor, _ expected: Tensor, rtol: Double = 1e-5, atol: Double = 1e-6, backend: any Backend,
    _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) throws {
    XCTAssertEqual(actual.shape, expected.shape, "\(message): shapes", file: file, line: line)
    assertClose(try backend.doubles(actual), try backend.doubles(expected), rtol: rtol, atol: atol, message, file: file, line: line)
}

/// Random normal values, deterministic per seed.
public func randomValues(_ count: Int, seed: UInt64, std: Double = 1) -> [Double] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in generator.nextNormal() * std }
}

public func randomTensor(_ backend: any Backend, _ shape: [Int], dtype: DType = .float32, seed: UInt64, std: Double = 1) throws -> Tensor {
    try backend.tensor(randomValues(shape.reduce(1, *), seed: seed, std: std), shape: shape, dtype: dtype)
}

/// Central finite differences of a scalar function at `x`: `(f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h`.
public func finiteDifferenceGradient(at x: [Double], step: Double = 1e-6, _ f: ([Double]) throws -> Double) rethrows -> [Double] {
    var point = x
    var gradient = [Double](repeating: 0, count: x.count)
    for i in x.indices {
        point[i] = x[i] + step
        let plus = try f(point)
        point[i] = x[i] - step
        let minus = try f(point)
        point[i] = x[i]
        gradient[i] = (plus - minus) / (2 * step)
    }
    return gradient
}

/// Finite differences of `loss` with respect to the elements of `tensor`, perturbed in place and restored after.
public func finiteDifferenceGradient(of tensor: Tensor, backend: any Backend, step: Double = 1e-6, _ loss: () throws -> Double) throws -> [Double] {
    let original = try backend.doubles(tensor)
    defer { try? backend.copy(backend.tensor(original, shape: tensor.shape, dtype: tensor.dtype), into: tensor) }
    return try finiteDifferenceGradient(at: original, step: step) { point in
        try backend.copy(backend.tensor(point, shape: tensor.shape, dtype: tensor.dtype), into: tensor)
        return try loss()
    }
}

/// `Σ y ⊙ weights`: a scalar whose gradient with respect to `y` is `weights` (drives gradient checks).
public func weightedSum(_ y: [Double], _ weights: [Double]) -> Double {
    zip(y, weights).reduce(0) { $0 + $1.0 * $1.1 }
}

/// Plain dense reference: `C[m, n] = A[m, k]·B[k, n]` in Double.
public func referenceMatmul(_ a: [Double], _ b: [Double], m: Int, k: Int, n: Int) -> [Double] {
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for p in 0..<k {
            let aip = a[i * k + p]
            for j in 0..<n { c[i * n + j] += aip * b[p * n + j] }
        }
    }
    return c
}

/// Transpose of a row-major `[rows, columns]` array.
public func referenceTranspose(_ x: [Double], rows: Int, columns: Int) -> [Double] {
    var result = [Double](repeating: 0, count: x.count)
    for r in 0..<rows { for c in 0..<columns { result[c * rows + r] = x[r * columns + c] } }
    return result
}

/// Asserts that `body` throws a `TensorError` matching `predicate`.
public func assertThrowsTensorError(
    _ body: @autoclosure () throws -> some Any, file: StaticString = #filePath, line: UInt = #line,
    _ predicate: (TensorError) -> Bool
) {
    do {
        _ = try body()
        XCTFail("expected a TensorError", file: file, line: line)
    } catch let error as TensorError {
        XCTAssertTrue(predicate(error), "unexpected error: \(error)", file: file, line: line)
    } catch {
        XCTFail("unexpected error type: \(error)", file: file, line: line)
    }
}
