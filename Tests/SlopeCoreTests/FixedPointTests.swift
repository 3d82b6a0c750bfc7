import SlopeCore
import XCTest

final class FixedPointTests: XCTestCase {
    func testDecimalsRoundingSignsAndSpecialValues() {
        XCTAssertEqual(fixedPoint(12.5, decimals: 2), "12.50")
        XCTAssertEqual(fixedPoint(0.00001234, decimals: 3), "0.000", "no exponent notation")
        XCTAssertEqual(fixedPoint(2.9996, decimals: 3), "3.000")
        XCTAssertEqual(fixedPoint(-0.034, decimals: 2), "-0.03")
        XCTAssertEqual(fixedPoint(-0.004, decimals: 2), "0.00", "no negative zero")
        XCTAssertEqual(fixedPoint(1.5, decimals: 0), "2")
        XCTAssertEqual(fixedPoint(1234.0625, decimals: 1), "1234.1")
        XCTAssertEqual(fixedPoint(.nan, decimals: 1), "nan")
        XCTAssertEqual(fixedPoint(-.infinity, decimals: 1), "-inf")
        XCTAssertEqual(fixedPoint(1e300, decimals: 2), "1e+300")
    }

    func testByteCountsInBinaryUnits() {
        XCTAssertEqual(byteCountText(3 << 30 / 2), "1.50 GiB")
        XCTAssertEqual(byteCountText(12 << 20), "12.0 MiB")
        XCTAssertEqual(byteCountText(3072), "3.0 KiB")
        XCTAssertEqual(byteCountText((1 << 30) - 1), "1024.0 MiB", "just below a GiB stays in MiB")
    }
}
