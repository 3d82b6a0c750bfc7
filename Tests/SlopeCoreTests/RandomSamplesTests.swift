import SlopeCore
import XCTest

final class RandomSamplesTests: XCTestCase {
    let cpu = CPUBackend()

    func testNormalSamplesHaveTheRequestedMomentsAndTail() throws {
        var generator = SeededGenerator(seed: 7)
        let count = 300_001  // several parallel chunks and an odd tail
        let values = try cpu.floats(cpu.randomNormal([count], std: 0.5, using: &generator)).map(Double.init)
        let mean = values.reduce(0, +) / Double(count)
        let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 0.005)
        XCTAssertEqual(std, 0.5, accuracy: 0.005)
        let beyondTwoSigma = Double(values.filter { abs($0) > 1 }.count) / Double(count)
        XCTAssertEqual(beyondTwoSigma, 0.0455, accuracy: 0.002, "a normal puts 4.55% beyond 2σ")
    }

    func testUniformSamplesStayInsideTheBound() throws {
        var generator = SeededGenerator(seed: 8)
        let values = try cpu.floats(cpu.randomUniform([100_000], bound: 3, using: &generator)).map(Double.init)
        XCTAssertTrue(values.allSatisfy { $0 >= -3 && $0 < 3 })
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 3.0, accuracy: 0.05, "uniform(−b, b) has variance b²/3")
    }

    func testSameSeedSameValuesAndEachCallDrawsOnce() throws {
        var first = SeededGenerator(seed: 9), second = SeededGenerator(seed: 9)
        let a = try cpu.floats(cpu.randomNormal([70_000], using: &first))
        let b = try cpu.floats(cpu.randomNormal([70_000], using: &second))
        XCTAssertEqual(a, b)
        var reference = SeededGenerator(seed: 9)
        _ = reference.next()
        XCTAssertEqual(first, reference, "one draw from the caller's generator per call")
        XCTAssertNotEqual(try cpu.floats(cpu.randomNormal([70_000], using: &first)), a, "the next call gets new values")
    }
}
