/// Gradients handed to a ``Communicator`` in buckets as backward completes them (PyTorch DDP's scheme): tensors
/// gather in the order they arrive until a bucket holds `capacity` bytes, which then starts averaging while
/// backward goes on; ``flush()`` sends what is left. Every tensor is sent once, whole (one larger than a bucket
/// is a bucket of its own).
final class GradientBuckets {
    /// PyTorch DDP's default bucket size (`bucket_cap_mb` = 25).
    static let defaultCapacity = 25 << 20

    let communicator: any Communicator
    let capacity: Int
    private var pending: [Tensor] = []
    private var pendingBytes = 0
    /// Bytes of each bucket started so far (for tests and the log).
    private(set) var startedBuckets: [Int] = []

    init(_ communicator: any Communicator, capacity: Int = GradientBuckets.defaultCapacity) {
        self.communicator = communicator
        self.capacity = max(1, capacity)
    }

    /// Gradients that backward will not write again this step.
    func add(_ tensors: [Tensor]) throws {
        for tensor in tensors {
            pending.append(tensor)
            pendingBytes += tensor.byteCount
            if pendingBytes >= capacity { try send() }
        }
    }

    /// Starts the last, partial bucket.
    func flush() throws {
        if !pending.isEmpty { try send() }
    }

    private func send() throws {
        try communicator.startAveraging(pending)
        startedBuckets.append(pendingBytes)
        pending = []
        pendingBytes = 0
    }
}
