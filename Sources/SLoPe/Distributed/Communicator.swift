#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// What data-parallel training needs from the processes it runs in: their number, this one's rank, and the
/// average of every rank's tensors. NCCL provides it across GPUs; ``LocalCommunicator`` in one process (tests,
/// and checking that N ranks step as one process with the global batch does).
public protocol Communicator: AnyObject, Sendable {
    var rank: Int { get }
    var worldSize: Int { get }
    /// Replaces each tensor, on every rank, by the mean of its values over the ranks (same shapes everywhere).
    func averageInPlace(_ tensors: [Tensor]) throws
    /// The mean over the ranks of each value.
    func average(_ values: [Double]) throws -> [Double]
    /// Replaces each tensor, on every rank, by rank `root`'s (bit for bit): where ZeRO-1 hands out the parameters
    /// each rank updated.
    func broadcast(_ tensors: [Tensor], from root: Int) throws
    /// Whether averaging can start on part of the gradients while backward computes the rest (NCCL, on a stream of
    /// its own); the trainer then hands over each bucket of gradients as it is complete.
    var overlapsBackward: Bool { get }
    /// Starts averaging `tensors` in place; they must not be written until ``finishAveraging()``.
    func startAveraging(_ tensors: [Tensor]) throws
    /// Every started average is in place (on a GPU: ordered before whatever is issued next).
    func finishAveraging() throws
}

extension Communicator {
    public var overlapsBackward: Bool { false }
    public func startAveraging(_ tensors: [Tensor]) throws { try averageInPlace(tensors) }
    public func finishAveraging() throws {}
}

/// Ranks as threads of one process, on CPU tensors: each call blocks until every rank has made it, then all read
/// the mean.
public final class LocalCommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public var worldSize: Int { hub.worldSize }
    let hub: Hub

    /// The shared meeting point of one job's ranks.
    public final class Hub: @unchecked Sendable {
        public let worldSize: Int
        private let state = Mutex(State())
        struct State {
            var round = 0
            var arrived = 0
            var sums: [[Double]] = []
            var result: [[Double]] = []
        }

        public init(worldSize: Int) { self.worldSize = worldSize }

        /// Every rank's `values` (the same lengths on all), summed — averaged with `mean` — once all have arrived.
        func meet(_ values: [[Double]], mean: Bool = true) -> [[Double]] {
            let round = state.withLock { state -> Int in
                if state.arrived == 0 { state.sums = values.map { Array(repeating: 0, count: $0.count) } }
                for (i, part) in values.enumerated() { for (j, value) in part.enumerated() { state.sums[i][j] += value } }
                state.arrived += 1
                if state.arrived == worldSize {
                    state.result = mean ? state.sums.map { $0.map { $0 / Double(worldSize) } } : state.sums
                    state.arrived = 0
                    state.round += 1
                    return state.round
                }
                return state.round + 1
            }
            // The last rank of a round publishes; the others wait for it (a short spin: tests and small models).
            while state.withLock({ $0.round }) < round { sched_yield() }
            return state.withLock { $0.result }
        }
    }

    public init(rank: Int, hub: Hub) {
        self.rank = rank
        self.hub = hub
    }

    public func averageInPlace(_ tensors: [Tensor]) throws {
        guard let backend = tensors.first.map({ _ in CPUBackend() }) else { return }
        let values = try tensors.map { try backend.floats($0).map(Double.init) }
        let means = hub.meet(values)
        for (tensor, mean) in zip(tensors, means) {
            try backend.copy(backend.tensor(mean.map(Float.init), shape: tensor.shape, dtype: tensor.dtype), into: tensor)
        }
    }

    public func average(_ values: [Double]) throws -> [Double] { hub.meet([values])[0] }

    /// A sum to which only `root` contributes (adding zeros is exact), in float64.
    public func broadcast(_ tensors: [Tensor], from root: Int) throws {
        let backend = CPUBackend()
        let values = try tensors.map { tensor in
            rank == root ? try backend.doubles(tensor) : [Double](repeating: 0, count: tensor.count)
        }
        for (tensor, value) in zip(tensors, hub.meet(values, mean: false)) {
            try backend.copy(backend.tensor(value, shape: tensor.shape, dtype: tensor.dtype), into: tensor)
        }
    }
}
