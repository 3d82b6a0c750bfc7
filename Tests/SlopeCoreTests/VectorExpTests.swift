@testable import SlopeCore
import XCTest

final class VectorExpTests: XCTestCase {
    func testFloatExpIsWithinTwoUlpOverItsRangeAndSaturatesOutside() {
        var worst = 0.0
        var x: Float = -87
        while x <= 88 {
            let exact = Double.exp(Double(x))
            worst = max(worst, abs(Double(Float.vectorExp(x)) - exact) / exact)
            x += 0.000_731
        }
        XCTAssertLessThan(worst, 2.5e-7, "about 2 ulp of float32")
        XCTAssertEqual(Float.vectorExp(0), 1)
        XCTAssertGreaterThan(Float.vectorExp(1000), 1e38)
        XCTAssertTrue(Float.vectorExp(1000).isFinite)
        XCTAssertLessThan(Float.vectorExp(-1000), 1e-37)
        XCTAssertTrue(Float.vectorExp(.nan).isNaN)
    }
}
