#if canImport(Glibc)
import Glibc
#endif

/// Ranks as processes joined by TCP through rank 0 (a star, over the rendezvous's connections): every average
/// sends each rank's values to rank 0, which adds them in rank order and sends the mean back. It carries the
/// values as float64, so it is meant for CPU training (and for testing data parallelism without GPUs); GPUs use
/// NCCL. Nothing waits forever: a peer that stops closes its connection, and one that stalls runs into the
/// timeout; either ends the call with an error naming the rank.
public final class SocketCommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let worldSize: Int
    let backend: any Backend
    let timeout: Double
    /// Rank 0: ranks 1… in order; any other rank: rank 0.
    private let connections: [Int32]

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case peerStopped(rank: Int)
        case peerTimedOut(rank: Int, seconds: Double)
        case outOfStep(rank: Int, sent: Int, expected: Int)

        public var description: String {
            switch self {
            case .peerStopped(let rank):
                return "rank \(rank) stopped (its connection closed): see that process's error; every rank stops with it"
            case let .peerTimedOut(rank, seconds):
                return "waited \(Int(seconds)) s for rank \(rank) to send its values: is it hung? (A longer wait: "
                    + "SLOPE_DISTRIBUTED_TIMEOUT=seconds)"
            case let .outOfStep(rank, sent, expected):
                return "rank \(rank) sent \(sent) values where this rank has \(expected): the ranks are out of step "
                    + "(started with different options or models?)"
            }
        }
    }

    init(rank: Int, worldSize: Int, connections: [Int32], backend: any Backend, timeout: Double) {
        self.rank = rank
        self.worldSize = worldSize
        self.connections = connections
        self.backend = backend
        self.timeout = timeout
        for connection in connections { Rendezvous.setTimeout(connection, seconds: timeout) }
    }

    /// Meets the job's other ranks at MASTER_ADDR:MASTER_PORT and keeps the connections. `timeout` bounds the
    /// meeting and, after it, every wait for a peer (a training step included).
    public static func connect(_ job: DistributedEnvironment, backend: any Backend, timeout: Double) throws -> SocketCommunicator {
        let connections = job.isMaster
            ? try Rendezvous.accept(worldSize: job.worldSize, port: job.masterPort, timeout: timeout)
            : [try Rendezvous.connect(rank: job.rank, worldSize: job.worldSize, masterAddress: job.masterAddress, port: job.masterPort, timeout: timeout)]
        return SocketCommunicator(rank: job.rank, worldSize: job.worldSize, connections: connections, backend: backend, timeout: timeout)
    }

    deinit { for connection in connections { close(connection) } }

    public func average(_ values: [Double]) throws -> [Double] { try combine(values, mean: true) }

    /// A sum to which only `root` contributes (adding zeros is exact), carried as float64.
    public func broadcast(_ tensors: [Tensor], from root: Int) throws {
        let values = try tensors.flatMap { tensor in
            rank == root ? try backend.doubles(tensor) : [Double](repeating: 0, count: tensor.count)
        }
        var rootValues = try combine(values, mean: false)[...]
        for tensor in tensors {
            let mine = Array(rootValues.prefix(tensor.count))
            rootValues = rootValues.dropFirst(tensor.count)
            try backend.copy(backend.tensor(mine, shape: tensor.shape, dtype: tensor.dtype), into: tensor)
        }
    }

    /// Each value summed over the ranks (in rank order, at rank 0), or averaged.
    private func combine(_ values: [Double], mean: Bool) throws -> [Double] {
        guard worldSize > 1 else { return values }
        if rank != 0 {
            try send(values, to: connections[0], peer: 0)
            return try receive(count: values.count, from: connections[0], peer: 0)
        }
        var sums = values
        for (index, connection) in connections.enumerated() {
            let theirs = try receive(count: values.count, from: connection, peer: index + 1)
            for i in sums.indices { sums[i] += theirs[i] }
        }
        let results = mean ? sums.map { $0 / Double(worldSize) } : sums
        for (index, connection) in connections.enumerated() { try send(results, to: connection, peer: index + 1) }
        return results
    }

    public func averageInPlace(_ tensors: [Tensor]) throws {
        let values = try tensors.flatMap { try backend.floats($0).map(Double.init) }
        var means = try average(values)[...]
        for tensor in tensors {
            let mine = means.prefix(tensor.count).map(Float.init)
            means = means.dropFirst(tensor.count)
            try backend.copy(backend.tensor(mine, shape: tensor.shape, dtype: tensor.dtype), into: tensor)
        }
    }

    // MARK: Wire format: a UInt64 count, then the values as little-endian float64.

    private func send(_ values: [Double], to connection: Int32, peer: Int) throws {
        var header: [UInt8] = []
        Rendezvous.appendUInt32(&header, UInt32(truncatingIfNeeded: values.count))
        Rendezvous.appendUInt32(&header, UInt32(truncatingIfNeeded: values.count >> 32))
        do {
            try Rendezvous.send(connection, header + values.withUnsafeBytes { Array($0) })
        } catch Rendezvous.Failure.socket {
            throw Failure.peerStopped(rank: peer)
        }
    }

    private func receive(count: Int, from connection: Int32, peer: Int) throws -> [Double] {
        let header = try receiveBytes(8, from: connection, peer: peer)
        let sent = Int(Rendezvous.readUInt32(header, at: 0)) | Int(Rendezvous.readUInt32(header, at: 4)) << 32
        guard sent == count else { throw Failure.outOfStep(rank: peer, sent: sent, expected: count) }
        let bytes = try receiveBytes(count * 8, from: connection, peer: peer)
        return [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
            initialized = count
        }
    }

    private func receiveBytes(_ count: Int, from connection: Int32, peer: Int) throws -> [UInt8] {
        do {
            return try Rendezvous.receive(connection, count: count, waitingFor: "rank \(peer)", seconds: timeout)
        } catch Rendezvous.Failure.protocolError {
            throw Failure.peerStopped(rank: peer)
        } catch Rendezvous.Failure.timedOut {
            throw Failure.peerTimedOut(rank: peer, seconds: timeout)
        }
    }
}
