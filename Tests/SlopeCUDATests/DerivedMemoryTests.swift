@testable import SlopeCUDA
import SlopeCore
import XCTest

// Host-side logic of device memory whose contents can be recomputed (CUDAStorage.Derivation) and of the
// caches of W's forms that say which of them is current; the numerics are `slope doctor`'s on a GPU.

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

    /// Memory a recorded CUDA graph uses stays where the graph addresses it: derived contents are not given back
    /// while any graph holds them, and may be once none does.
    func testMemoryHeldByARecordedGraphIsNotEvicted() throws {
        let allocator = CachingAllocator(provider: FakeDeviceMemory(capacity: 1 << 30))
        let storage = try CUDAStorage(byteCount: 4096, device: .cuda(0), allocator: allocator)
        let cpu = CPUBackend()
        let w = try cpu.compress(cpu.tensor([1, 0, 2, 0, 0, 3, 0, 4] as [Float], shape: [2, 4], dtype: .float32), pattern: .twoFour, mask: nil)
        storage.derivation = .doublePrunedTranspose(of: w, slots: w.indices)
        storage.graphHolds = 2
        storage.evict()
        XCTAssertTrue(storage.isResident)
        storage.graphHolds -= 1
        storage.evict()
        XCTAssertTrue(storage.isResident, "one graph still holds it")
        storage.graphHolds -= 1
        storage.evict()
        XCTAssertFalse(storage.isResident)
        XCTAssertEqual(allocator.statistics.inUse, 0)
    }
}

extension CUDAStorageEvictionTests {
    /// The transpose's cuSPARSELt copy can be given back between GEMMs (it is rebuilt from its metadata and the
    /// recomputed values), W's copy, which holds W's only values, cannot; and the copy refers to the values'
    /// memory weakly, so the cycle values → operand cache → copy → values does not keep a dropped weight alive.
    func testTheTransposesCopyIsGivenBackAndDoesNotKeepItsValuesAlive() throws {
        let allocator = CachingAllocator(provider: FakeDeviceMemory(capacity: 1 << 30))
        func storage(_ bytes: Int) throws -> CUDAStorage { try CUDAStorage(byteCount: bytes, device: .cuda(0), allocator: allocator) }
        var values: CUDAStorage? = try storage(2048)
        let (copyOfW, copyOfTranspose, metadata, map) = (try storage(2304), try storage(2304), try storage(256), try storage(4096))
        let cache = SparseOperandCache(generation: 0)
        cache.compressed[.sparseA] = .init(storage: copyOfTranspose, valueMap: .wide(map), generation: 0)
        values!.derived = cache
        copyOfTranspose.derivation = .sparseOperand(values: .init(storage: values), count: 1024, dtype: .bfloat16, metadata: metadata, map: .wide(map))
        let before = allocator.statistics.inUse
        copyOfW.evict()
        copyOfTranspose.evict()
        XCTAssertTrue(copyOfW.isResident, "W's copy holds primary values")
        XCTAssertFalse(copyOfTranspose.isResident)
        XCTAssertGreaterThanOrEqual(before - allocator.statistics.inUse, 2304, "the copy's block (rounded to its size class) is back")

        weak var dropped = values
        values = nil
        XCTAssertNil(dropped, "the copy's derivation must not keep the values' memory (and so itself) alive")
        guard case .sparseOperand(let held, _, _, _, _)? = copyOfTranspose.derivation else { return XCTFail("derivation lost") }
        XCTAssertNil(held.storage)
    }
}

final class SparseOperandCacheTests: XCTestCase {
    /// AdamW stepping W's values inside one cuSPARSELt copy leaves that copy current and every other form of
    /// W (the other arrangement's copy, the decompressed dense W) stale.
    func testSteppingInsideACopyKeepsOnlyThatCopyCurrent() throws {
        let allocator = CachingAllocator(provider: FakeDeviceMemory(capacity: 1 << 30))
        func storage() throws -> CUDAStorage { try CUDAStorage(byteCount: 4096, device: .cuda(0), allocator: allocator) }
        let (copyA, copyB, map) = (try storage(), try storage(), try storage())
        let cache = SparseOperandCache(generation: 3)
        cache.compressed[.sparseA] = .init(storage: copyA, valueMap: .wide(map), generation: 3)
        cache.compressed[.sparseB] = .init(storage: copyB, valueMap: .wide(map), generation: 3)
        cache.dense = try CPUBackend().zeros([2, 2], dtype: .float32)

        cache.steppedInPlace(copyA, generation: 4)
        XCTAssertEqual(cache.generation, 4)
        XCTAssertEqual(cache.compressed[.sparseA]?.generation, 4, "the copy the step ran in is current")
        XCTAssertEqual(cache.compressed[.sparseB]?.generation, 3, "the other arrangement's copy must be rebuilt")
        XCTAssertNil(cache.dense, "the decompressed W is stale")

        let values = try storage()
        XCTAssertFalse(values.derivesFromCompressedCopy)
        values.derivation = .compressedCopy(copyA, map: .wide(map), count: 2048, dtype: .bfloat16)
        XCTAssertTrue(values.derivesFromCompressedCopy)
    }
}
