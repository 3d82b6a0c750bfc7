import CCUDA
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Host→device copies through a pinned staging ring, so an upload returns without waiting for the stream: a copy
/// from pageable memory makes the driver wait for the stream first, and slope's plain upload then synchronises so the
/// host buffer may be freed — each one drains the GPU's queue (a decode step uploads its token, positions and index
/// arrays). Staged, the bytes are copied into pinned memory at once and the device copy runs in stream order; the
/// region is reused only after the event recorded behind its copy has completed. Larger uploads than the ring take
/// the plain path. Off unless `SLOPE_PINNED_UPLOADS=1`: measured on an H100, it gains nothing once decode steps are
/// replayed graphs (docs/cuda.md, Uploads).
final class PinnedUploads: @unchecked Sendable {
    let device: CUDADevice
    let buffer: UnsafeMutableRawPointer
    private let state: Mutex<(ring: StagingRing<CUevent>, spareEvents: [CUevent])>

    /// A ring of `capacity` pinned bytes, or nil when the driver gives no pinned memory.
    init?(device: CUDADevice, capacity: Int = 4 << 20) {
        var pointer: UnsafeMutableRawPointer?
        guard (try? device.makeCurrent()) != nil, device.driver.cuMemHostAlloc(&pointer, capacity, 0) == 0, let pointer else { return nil }
        self.device = device
        buffer = pointer
        state = Mutex((StagingRing(capacity: capacity), []))
    }

    deinit {
        try? device.synchronize()
        state.withLock { state in
            for event in state.ring.inFlight.map(\.fence) + state.spareEvents { _ = device.driver.cuEventDestroy(event) }
        }
        _ = device.driver.cuMemFreeHost(buffer)
    }

    /// Queues a copy of `count` bytes at `source` to `destination` on the device's stream; false when they do not fit
    /// the ring (nothing was done).
    func upload(_ source: UnsafeRawPointer, count: Int, to destination: CUdeviceptr) throws -> Bool {
        let driver = device.driver
        return try state.withLock { state in
            guard let (range, released) = state.ring.reserve(count) else { return false }
            if let last = released.last { try driver.check(driver.cuEventSynchronize(last), "cuEventSynchronize") }
            state.spareEvents += released
            memcpy(buffer + range.lowerBound, source, count)
            try driver.check(driver.cuMemcpyHtoDAsync(destination, buffer + range.lowerBound, count, device.stream), "cuMemcpyHtoDAsync")
            var event = state.spareEvents.popLast()
            if event == nil { try driver.check(driver.cuEventCreate(&event, 2 /* CU_EVENT_DISABLE_TIMING */), "cuEventCreate") }
            try driver.check(driver.cuEventRecord(event, device.stream), "cuEventRecord")
            state.ring.record(range, fence: event!)
            return true
        }
    }
}
