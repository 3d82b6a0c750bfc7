import SlopeCore
import XCTest

final class CheckedSizeTests: XCTestCase {
    func testProductsSumsAndConversions() {
        XCTAssertEqual(CheckedSize.product([]), 1)
        XCTAssertEqual(CheckedSize.product([3, 4, 2]), 24)
        XCTAssertEqual(CheckedSize.product([0, Int.max]), 0)
        XCTAssertNil(CheckedSize.product([1 << 40, 1 << 40]), "2^80 overflows")
        XCTAssertNil(CheckedSize.product([4, -1]), "negative dimension")
        XCTAssertEqual(CheckedSize.sum(Int.max - 1, 1), Int.max)
        XCTAssertNil(CheckedSize.sum(Int.max, 1))
        XCTAssertNil(CheckedSize.sum(-1, 5))
        XCTAssertEqual(CheckedSize.int(UInt64(Int.max)), Int.max)
        XCTAssertNil(CheckedSize.int(UInt64(Int.max) + 1))
    }
}
