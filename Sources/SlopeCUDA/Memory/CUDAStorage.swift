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

    /// The device address of the first byte.
    public var address: CUdeviceptr { block.address }

    deinit { allocator.release(block) }
}
