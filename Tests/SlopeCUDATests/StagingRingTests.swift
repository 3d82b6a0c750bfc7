@testable import SlopeCUDA
import XCTest

/// The pinned upload ring's bookkeeping: regions follow one another aligned, wrap to the start when the end is
/// reached, and a region over copies still in flight waits for the newest of them (the older ones, done by then in
/// stream order, are handed back with it); too large a copy is refused.
final class StagingRingTests: XCTestCase {
    func testRegionsWrapAndWaitForTheNewestOverlappingCopy() {
        var ring = StagingRing<Int>(capacity: 1024, alignment: 256)
        XCTAssertNil(ring.reserve(0))
        XCTAssertNil(ring.reserve(1025), "larger than the ring: copied another way")
        var fences = 0
        func take(_ length: Int) -> (Range<Int>, [Int]) {
            let (range, released) = ring.reserve(length)!
            fences += 1
            ring.record(range, fence: fences)
            return (range, released)
        }
        XCTAssertTrue(take(100) == (0..<100, []))
        XCTAssertTrue(take(300) == (256..<556, []))
        XCTAssertTrue(take(200) == (768..<968, []))
        // No room at the end: back to the start, over fence 1 only.
        XCTAssertTrue(take(200) == (0..<200, [1]))
        // Over fences 2 (256..<556): the newest overlapping; nothing older is left in flight.
        XCTAssertTrue(take(400) == (256..<656, [2]))
        XCTAssertEqual(ring.inFlight.map(\.fence), [3, 4, 5])
        // Past the end again: over 4 (0..<200) and 5 (256..<656) → wait for 5, release 3, 4 and 5 (3 finished before 5).
        XCTAssertTrue(take(600) == (0..<600, [3, 4, 5]))
        XCTAssertEqual(ring.inFlight.map(\.fence), [6])
        XCTAssertEqual(ring.head, 768)
        XCTAssertTrue(take(1024) == (0..<1024, [6]), "a whole-ring copy waits for everything")
    }
}

private func == (lhs: (Range<Int>, [Int]), rhs: (Range<Int>, [Int])) -> Bool { lhs.0 == rhs.0 && lhs.1 == rhs.1 }
