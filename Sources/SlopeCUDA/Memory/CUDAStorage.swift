import CCUDA
import SlopeCore

/// Device memory behind a tensor; goes back to the caching allocator when the last tensor using it is gone.
public final class CUDAStorage: TensorStorage, @unchecked Sendable {
    public let byteCount: Int
    public let device: Device
    let block: CachingAllocator.Block
    let allocator: CachingAllocator

    init(byteCount: Int, device: Device, allocator: CachingAllocator) throws {
        self.byteCount = byteCount
        self.device = device
        self.allocator = allocator
        block = try allocator.allocate(byteCount)
    }

    /// Bumped by every op that writes into existing memory, so caches derived from the contents
    /// (cuSPARSELt's compressed copy of a weight) know when to rebuild.
    var generation: UInt64 = 0
    /// A cache derived from this memory's contents, dropped with it.
    var derived: AnyObject?

    /// The device address of the first byte.
    public var address: CUdeviceptr { block.address }

    deinit { allocator.release(block) }
}
