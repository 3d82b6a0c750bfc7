import SlopeCore
import SlopeTestSupport
import XCTest

/// Checks `backward(x, dy)` against central finite differences of `x ↦ Σ forward(x) ⊙ dy`, all in Float64.
func checkGradient(
    _ backend: any Backend, shape: [Int], seed: UInt64, rtol: Double = 1e-6, atol: Double = 1e-7,
    _ message: String, file: StaticString = #filePath, line: UInt = #line,
    input: ((Int) -> Double)? = nil,
    forward: (Tensor) throws -> Tensor, backward: (Tensor, Tensor) throws -> Tensor
) throws {
    let count = shape.reduce(1, *)
    let x = input.map { f in (0..<count).map(f) } ?? randomValues(count, seed: seed)
    let xTensor = try backend.tensor(x, shape: shape, dtype: .float64)
    let outputShape = try forward(xTensor).shape
    let weights = randomValues(outputShape.reduce(1, *), seed: seed + 1000)
    let analytic = try backend.doubles(backward(xTensor, backend.tensor(weights, shape: outputShape, dtype: .float64)))
    let numeric = try finiteDifferenceGradient(at: x) { point in
        weightedSum(try backend.doubles(forward(backend.tensor(point, shape: shape, dtype: .float64))), weights)
    }
    assertClose(analytic, numeric, rtol: rtol, atol: atol, message, file: file, line: line)
}
