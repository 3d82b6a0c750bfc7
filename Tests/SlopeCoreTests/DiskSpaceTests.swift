import Foundation
import SlopeCore
import XCTest

final class DiskSpaceTests: XCTestCase {
    /// The temporary folder's volume reports some free space; a path that does not exist reports none.
    func testAvailableBytes() throws {
        let available = try XCTUnwrap(DiskSpace.availableBytes(at: FileManager.default.temporaryDirectory.path))
        XCTAssertGreaterThan(available, 0)
        XCTAssertNil(DiskSpace.availableBytes(at: "/no/such/folder/\(UUID().uuidString)"))
    }
}
