import Synchronization

/// Where raw device memory comes from (the driver, or a fake in tests).
protocol DeviceMemoryProvider: Sendable {
    /// A new block of exactly `bytes`, or `nil` when the device is out of memory.
    func allocate(_ bytes: Int) throws -> UInt64?
    func free(_ address: UInt64) throws
    /// Free bytes on the device, for error messages.
    func freeBytes() -> Int
}

/// A caching allocator: freed blocks are kept in size classes and handed out again, so a training step
/// calls `cuMemAlloc` only while the working set grows.
final class CachingAllocator: Sendable {
    struct Block: Sendable {
        let address: UInt64
        let size: Int
    }

    struct State {
        var cached: [Int: [UInt64]] = [:]
        var inUse = 0
        var reserved = 0
        var peakInUse = 0
        /// The peak since `startPeakWindow()` (profiling: where in a run memory peaks).
        var windowPeak = 0
    }

    private let provider: any DeviceMemoryProvider
    private let state = Mutex(State())

    init(provider: any DeviceMemoryProvider) {
        self.provider = provider
    }

    /// Requests round up to 512 bytes below 1 MiB and to 2 MiB above, so blocks are reused across near sizes.
    static func sizeClass(_ bytes: Int) -> Int {
        let request = max(bytes, 1)
        let granule = request <= 1 << 20 ? 512 : 2 << 20
        return (request + granule - 1) / granule * granule
    }

    func allocate(_ bytes: Int) throws -> Block {
        let size = Self.sizeClass(bytes)
        if let address = state.withLock({ state -> UInt64? in
            guard let address = state.cached[size]?.popLast() else { return nil }
            state.inUse += size
            state.peakInUse = max(state.peakInUse, state.inUse)
            state.windowPeak = max(state.windowPeak, state.inUse)
            return address
        }) {
            return Block(address: address, size: size)
        }
        var address = try provider.allocate(size)
        if address == nil {
            try emptyCache()  // give cached blocks of other sizes back to the driver and try once more
            address = try provider.allocate(size)
        }
        guard let address else {
            throw CUDAError.outOfMemory(requestedBytes: bytes, heldBytes: statistics.reserved, freeBytes: provider.freeBytes())
        }
        state.withLock { state in
            state.reserved += size
            state.inUse += size
            state.peakInUse = max(state.peakInUse, state.inUse)
            state.windowPeak = max(state.windowPeak, state.inUse)
        }
        return Block(address: address, size: size)
    }

    func release(_ block: Block) {
        state.withLock { state in
            state.cached[block.size, default: []].append(block.address)
            state.inUse -= block.size
        }
    }

    /// Returns every cached (unused) block to the device.
    func emptyCache() throws {
        let blocks = state.withLock { state -> [UInt64] in
            let all = state.cached.flatMap { size, addresses in addresses.map { _ in size } }
            state.reserved -= all.reduce(0, +)
            defer { state.cached.removeAll() }
            return state.cached.values.flatMap { $0 }
        }
        for address in blocks { try provider.free(address) }
    }

    /// Starts a new window for `windowPeak` at what is in use now.
    func startPeakWindow() {
        state.withLock { $0.windowPeak = $0.inUse }
    }

    /// The most bytes in use since `startPeakWindow()` (or since the allocator was made).
    var windowPeak: Int { state.withLock { $0.windowPeak } }

    /// Bytes held by live tensors, held including the cache, and the peak in use.
    var statistics: (inUse: Int, reserved: Int, peakInUse: Int) {
        state.withLock { ($0.inUse, $0.reserved, $0.peakInUse) }
    }
}
