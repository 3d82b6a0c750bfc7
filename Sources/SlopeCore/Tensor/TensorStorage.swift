#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A block of device memory owned by one or more tensors.
///
/// Each backend has its own storage class; the `Tensor` value only carries shape and dtype on top.
public protocol TensorStorage: AnyObject, Sendable {
    var device: Device { get }
    var byteCount: Int { get }
}

/// Current and peak bytes held by a backend's allocations.
public struct MemoryStatistics: Sendable, Equatable {
    public var currentBytes: Int
    public var peakBytes: Int

    public init(currentBytes: Int, peakBytes: Int) {
        self.currentBytes = currentBytes
        self.peakBytes = peakBytes
    }
}

/// Host memory, 64-byte aligned so SIMD kernels can use aligned loads on whole rows.
public final class HostStorage: TensorStorage, @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int
    public var device: Device { .cpu }
    /// A structure derived from this memory's layout (e.g. a slot map), dropped with it.
    var derived: AnyObject?

    static let current = Atomic<Int>(0)
    static let peak = Atomic<Int>(0)

    /// Zero-initialised memory of `byteCount` bytes. More than the machine has, or an allocation the system refuses,
    /// is an error with the sizes rather than a trap (or, past what is physically there, the kernel's OOM killer).
    public init(byteCount: Int) throws {
        if let capacity = HostMemory.physicalBytes, byteCount > capacity {
            throw TensorError.exceedsMemory(what: "a host tensor", neededBytes: byteCount, capacityBytes: capacity, device: .cpu)
        }
        var memory: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, 64, max(byteCount, 1)) == 0, let memory else {
            throw TensorError.outOfMemory(device: .cpu, requestedBytes: byteCount, heldBytes: Self.current.load(ordering: .relaxed))
        }
        self.byteCount = byteCount
        pointer = memory
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        let now = Self.current.add(byteCount, ordering: .relaxed).newValue
        _ = Self.peak.max(now, ordering: .relaxed)
    }

    deinit {
        free(pointer)
        Self.current.subtract(byteCount, ordering: .relaxed)
    }

    /// Bytes held by all live host tensors, and the most held at any time.
    public static var statistics: MemoryStatistics {
        MemoryStatistics(currentBytes: current.load(ordering: .relaxed), peakBytes: peak.load(ordering: .relaxed))
    }
}
