@testable import SlopeCUDA
import SlopeCore
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
}

final class CUDAStorageEvictionTests: XCTestCase {
    /// Only derived contents are given back; eviction and reallocation are seen by the allocator's counts,
    /// and an evicted storage going away frees nothing twice.
    func testOnlyDerivedMemoryIsEvictedAndComesBackOnReallocation() throws {
        let device = FakeDeviceMemory(capacity: 1 << 30)
        let allocator = CachingAllocator(provider: device)
        let bytes = 4096
        var storage: CUDAStorage? = try CUDAStorage(byteCount: bytes, device: .cuda(0), allocator: allocator)
        storage!.evict()
        XCTAssertTrue(storage!.isResident, "primary contents must never be given back")
        XCTAssertEqual(allocator.statistics.inUse, bytes)

        let cpu = CPUBackend()
        let w = try cpu.compress(cpu.tensor([1, 0, 2, 0, 0, 3, 0, 4] as [Float], shape: [2, 4], dtype: .float32), pattern: .twoFour, mask: nil)
        storage!.derivation = .doublePrunedTranspose(of: w, slots: w.indices)
        storage!.evict()
        XCTAssertFalse(storage!.isResident)
        XCTAssertEqual(allocator.statistics.inUse, 0)
        storage!.evict()  // evicting twice releases once
        XCTAssertEqual(allocator.statistics.inUse, 0)

        try storage!.reallocate()
        XCTAssertTrue(storage!.isResident)
        XCTAssertEqual(allocator.statistics.inUse, bytes)
        XCTAssertEqual(device.log.withLock { $0.allocations }, [bytes], "the block comes back from the allocator's cache")

        storage!.evict()
        storage = nil  // deinit of evicted memory must not release again
        XCTAssertEqual(allocator.statistics.inUse, 0)
        XCTAssertEqual(allocator.statistics.reserved, bytes)
    }
}
