@testable import SlopeCUDA
import XCTest

/// The memo that lets a decode step upload its index arrays once instead of once per layer.
final class RecentUploadsTests: XCTestCase {
    func testAnArraySeenLatelyIsNotUploadedAgain() throws {
        let recent = RecentUploads<Int>(capacity: 2)
        var uploads = 0
        func get(_ key: [Int32]) -> Int {
            recent.value(for: key) { key in
                uploads += 1
                return key.count * 100 + uploads
            }
        }
        // 24 layers asking for the same rows and positions: two uploads.
        for _ in 0..<24 {
            XCTAssertEqual(get([4, 5, 6]), 301)
            XCTAssertEqual(get([7]), 102)
        }
        XCTAssertEqual(uploads, 2)
        // A third array evicts the least recently used ([4, 5, 6]); [7] stays.
        XCTAssertEqual(get([1, 2]), 203)
        XCTAssertEqual(get([7]), 102)
        XCTAssertEqual(get([4, 5, 6]), 304, "uploaded again after eviction")
        XCTAssertEqual(uploads, 4)
        // Equal contents only: a different array of the same length is its own upload.
        XCTAssertEqual(get([4, 5, 7]), 305)
    }
}
