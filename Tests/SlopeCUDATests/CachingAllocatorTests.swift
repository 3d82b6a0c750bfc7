@testable import SlopeCUDA
import Synchronization
import XCTest

/// A fake device with `capacity` bytes that records calls.
final class FakeDeviceMemory: DeviceMemoryProvider, Sendable {
    struct Log { var allocations: [Int] = []; var live: [UInt64: Int] = [:]; var frees = 0; var used = 0; var next: UInt64 = 0x1000 }
    let capacity: Int
    let log = Mutex(Log())
    init(capacity: Int) { self.capacity = capacity }

    func allocate(_ bytes: Int) throws -> UInt64? {
        log.withLock { log in
            guard log.used + bytes <= capacity else { return nil }
            log.used += bytes
            log.allocations.append(bytes)
            log.live[log.next] = bytes
            defer { log.next += UInt64(bytes) }
            return log.next
        }
    }
    func free(_ address: UInt64) throws {
        log.withLock { log in
            log.frees += 1
            log.used -= log.live.removeValue(forKey: address) ?? 0
        }
    }
    func freeBytes() -> Int { log.withLock { capacity - $0.used } }
}

final class CachingAllocatorTests: XCTestCase {
    func testSizeClasses() {
        XCTAssertEqual(CachingAllocator.sizeClass(1), 512)
        XCTAssertEqual(CachingAllocator.sizeClass(512), 512)
        XCTAssertEqual(CachingAllocator.sizeClass(513), 1024)
        XCTAssertEqual(CachingAllocator.sizeClass(1 << 20), 1 << 20)
        XCTAssertEqual(CachingAllocator.sizeClass((1 << 20) + 1), 2 << 20)
        XCTAssertEqual(CachingAllocator.sizeClass(5 << 20), 6 << 20)
    }

    func testFreedBlocksAreReusedWithoutNewAllocations() throws {
        let device = FakeDeviceMemory(capacity: 1 << 30)
        let allocator = CachingAllocator(provider: device)
        for _ in 0..<10 {
            let a = try allocator.allocate(1000)
            let b = try allocator.allocate(3 << 20)
            allocator.release(a)
            allocator.release(b)
        }
        XCTAssertEqual(device.log.withLock { $0.allocations }, [1024, 4 << 20], "one driver allocation per size class")
        let stats = allocator.statistics
        XCTAssertEqual(stats.inUse, 0)
        XCTAssertEqual(stats.reserved, 1024 + (4 << 20))
        XCTAssertEqual(stats.peakInUse, 1024 + (4 << 20))
    }

    func testOutOfMemoryFreesTheCacheThenReportsSizes() throws {
        let device = FakeDeviceMemory(capacity: 8 << 20)
        let allocator = CachingAllocator(provider: device)
        allocator.release(try allocator.allocate(6 << 20))  // cached, not in use
        let big = try allocator.allocate(4 << 20)            // fits only after the cache is emptied
        XCTAssertEqual(device.log.withLock { $0.frees }, 1)
        XCTAssertThrowsError(try allocator.allocate(16 << 20)) { error in
            guard case CUDAError.outOfMemory(let requested, let held, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(requested, 16 << 20)
            XCTAssertEqual(held, 4 << 20)
            XCTAssertTrue("\(error)".contains("requested 16.0 MiB while slope holds 4.0 MiB"), "\(error)")
            XCTAssertTrue("\(error)".contains("reduce the batch size") && "\(error)".contains("--recompute-activations"), "\(error)")
        }
        allocator.release(big)
    }

    /// The window peak (where a profiled run's memory peaks) starts again at what is in use, and sees a
    /// buffer made and freed within the window; the run's peak is left alone.
    func testPeakWindowSeesTransientBuffersAndRestarts() throws {
        let allocator = CachingAllocator(provider: FakeDeviceMemory(capacity: 1 << 30))
        let kept = try allocator.allocate(4 << 20)
        allocator.release(try allocator.allocate(8 << 20))  // a transient: gone before anyone looks
        XCTAssertEqual(allocator.windowPeak, 12 << 20)
        allocator.startPeakWindow()
        XCTAssertEqual(allocator.windowPeak, 4 << 20, "a new window starts at what is in use")
        allocator.release(try allocator.allocate(2 << 20))
        XCTAssertEqual(allocator.windowPeak, 6 << 20)
        XCTAssertEqual(allocator.statistics.peakInUse, 12 << 20, "the run's peak is not reset")
        allocator.release(kept)
    }
}
