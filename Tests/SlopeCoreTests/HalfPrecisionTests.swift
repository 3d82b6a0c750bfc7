import SlopeCore
import XCTest

final class HalfPrecisionTests: XCTestCase {
    func testBFloat16RoundsToNearestEven() {
        XCTAssertEqual(bfloat16Bits(from: 1.0), 0x3F80)
        // Exactly halfway between 0x3F80 and 0x3F81: ties go to the even 0x3F80.
        XCTAssertEqual(bfloat16Bits(from: Float(bitPattern: 0x3F80_8000)), 0x3F80)
        // Halfway between 0x3F81 and 0x3F82: ties go to the even 0x3F82.
        XCTAssertEqual(bfloat16Bits(from: Float(bitPattern: 0x3F81_8000)), 0x3F82)
        // Just above halfway rounds up.
        XCTAssertEqual(bfloat16Bits(from: Float(bitPattern: 0x3F80_8001)), 0x3F81)
        XCTAssertEqual(bfloat16Bits(from: -2.0), 0xC000)
        XCTAssertEqual(bfloat16Bits(from: .infinity), 0x7F80)
        XCTAssertTrue(float(fromBFloat16: bfloat16Bits(from: .nan)).isNaN)
        // The largest finite float rounds up to infinity, as RNE demands.
        XCTAssertEqual(bfloat16Bits(from: .greatestFiniteMagnitude), 0x7F80)
    }

    func testBFloat16RoundTripIsExactForRepresentableValues() {
        for bits in stride(from: UInt16(0), to: 0x7F80, by: 7) {
            XCTAssertEqual(bfloat16Bits(from: float(fromBFloat16: bits)), bits)
        }
    }

    func testFloat16MatchesTheHardwareConversion() {
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        var generator = SeededGenerator(seed: 7)
        var samples: [Float] = [0, -0, 1, 65504, 65520, 70000, 6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-9, .infinity, -.infinity]
        for _ in 0..<20000 {
            let exponent = Float(generator.nextUniform() * 40 - 28)
            samples.append(Float(generator.nextNormal()) * Float.pow(2, exponent))
        }
        for value in samples {
            XCTAssertEqual(float16Bits(from: value), Float16(value).bitPattern, "value \(value)")
            let bits = Float16(value).bitPattern
            XCTAssertEqual(float(fromFloat16: bits), Float(Float16(bitPattern: bits)), "bits \(bits)")
        }
        XCTAssertTrue(float(fromFloat16: float16Bits(from: .nan)).isNaN)
        #endif
    }

    func testTensorsStoreHalfPrecisionWithRounding() throws {
        let cpu = CPUBackend()
        let values: [Float] = [1, 1.00390625, 3.14159, -1e-3, 1000.5]
        for dtype in [DType.float16, .bfloat16] {
            let t = try cpu.tensor(values, shape: [5], dtype: dtype)
            XCTAssertEqual(t.byteCount, 10)
            let back = try cpu.floats(t)
            for (a, b) in zip(back, values) {
                XCTAssertEqual(a, b, accuracy: abs(b) * (dtype == .float16 ? 1e-3 : 8e-3))
            }
            let expected = dtype == .float16 ? values.map { float(fromFloat16: float16Bits(from: $0)) } : values.map { float(fromBFloat16: bfloat16Bits(from: $0)) }
            XCTAssertEqual(back, expected)
        }
    }
}
