import CCUDA
import SlopeCore

/// Device memory behind a tensor; goes back to the caching allocator when the last tensor using it is gone.
///
/// Memory whose contents can be recomputed (a ``Derivation``) may be given back while nothing reads it
/// (`evict()`); the backend recomputes it into a fresh block the next time an op asks for its address.
public final class CUDAStorage: TensorStorage, @unchecked Sendable {
    public let byteCount: Int
    public let device: Device
    /// nil while evicted.
    private(set) var block: CachingAllocator.Block?
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
    /// The smallest and largest of the int32 values last uploaded into this memory from the host, while nothing has
    /// written it since: ids checked against it need no read-back.
    var uploadedRange: ClosedRange<Int32>?
    /// A cache derived from this memory's contents, dropped with it.
    var derived: AnyObject?
    /// How to recompute the contents, when they are a function of other tensors; nil when they are primary.
    var derivation: Derivation?

    /// Contents that can be recomputed from other tensors.
    enum Derivation {
        /// The double-pruned transpose's values: W's current values at the transpose's slots.
        case doublePrunedTranspose(of: CompressedMatrix, slots: Tensor)
        /// W's compressed values, read back out of cuSPARSELt's copy of W (current when this was set, and
        /// current as long as the values are not written, which makes them primary again).
        case compressedCopy(CUDAStorage, map: SparseOperandCache.ValueMap, count: Int, dtype: DType)
        /// A compressed matrix's slot indices one per byte, unpacked from the 2-bit form the GPU keeps for m ≤ 4.
        case packedSlotIndices(CUDAStorage)
        /// cuSPARSELt's copy of a matrix whose values are themselves derived (the double-pruned transpose's): its
        /// metadata, kept aside, with the values (`count` of `dtype`) written in through the learned map. Their
        /// memory is held weakly: it owns the cache this copy belongs to.
        case sparseOperand(values: WeakStorage, count: Int, dtype: DType, metadata: CUDAStorage, map: SparseOperandCache.ValueMap)
    }

    struct WeakStorage {
        weak var storage: CUDAStorage?
    }

    var isResident: Bool { block != nil }

    var derivesFromCompressedCopy: Bool {
        if case .compressedCopy = derivation { return true }
        return false
    }

    /// The device address of the first byte. Ops reach it through `CUDABackend.storage(_:_:)`, which brings
    /// evicted contents back first.
    public var address: CUdeviceptr {
        guard let block else { preconditionFailure("CUDAStorage: address of evicted memory (go through CUDABackend.storage)") }
        return block.address
    }

    /// Recorded CUDA graphs that read or write this memory at its address: while any does, it stays put.
    var graphHolds = 0

    /// Gives the memory back to the allocator; only derived contents may go (they are recomputed on demand), and
    /// only while no recorded graph uses the address.
    func evict() {
        guard derivation != nil, graphHolds == 0, let block else { return }
        allocator.release(block)
        self.block = nil
    }

    /// A fresh block for evicted contents, for the caller to fill.
    func reallocate() throws {
        guard block == nil else { return }
        block = try allocator.allocate(byteCount)
    }

    deinit { if let block { allocator.release(block) } }
}
