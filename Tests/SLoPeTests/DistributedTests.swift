import Dispatch
import FoundationEssentials
import SLoPe
import SlopeData
import SlopeTestSupport
import Synchronization
import XCTest

/// torchrun's environment and the TCP rendezvous, over loopback.
final class DistributedTests: XCTestCase {
    func testEnvironmentFollowsTorchrun() throws {
        XCTAssertNil(try DistributedEnvironment.from([:]), "no WORLD_SIZE: one process")
        XCTAssertNil(try DistributedEnvironment.from(["WORLD_SIZE": "1", "RANK": "0"]))
        let job = try DistributedEnvironment.from([
            "WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29500",
        ])
        XCTAssertEqual(job, DistributedEnvironment(rank: 5, worldSize: 8, localRank: 1, masterAddress: "node0", masterPort: 29500))
        XCTAssertEqual(try DistributedEnvironment.from(["WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "a", "MASTER_PORT": "1"])?.localRank, 1,
                       "LOCAL_RANK defaults to RANK")
        let refusals: [([String: String], String)] = [
            (["WORLD_SIZE": "2", "RANK": "1", "MASTER_PORT": "29500"], "MASTER_ADDR must be"),
            (["WORLD_SIZE": "2", "MASTER_ADDR": "a", "MASTER_PORT": "29500"], "RANK must be"),
            (["WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "a", "MASTER_PORT": "29500"], "RANK=2 is not a rank from 0 to 1"),
            (["WORLD_SIZE": "two", "RANK": "0"], "WORLD_SIZE=two"),
            (["WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "a", "MASTER_PORT": "70000"], "MASTER_PORT=70000"),
        ]
        for (variables, words) in refusals {
            XCTAssertThrowsError(try DistributedEnvironment.from(variables)) { XCTAssertTrue("\($0)".contains(words), "\(words): \($0)") }
        }
    }

    static func port() -> UInt16 { UInt16.random(in: 20_000...60_000) }

    /// Runs `body` for every rank at once and collects what each returned or threw.
    func together(_ ranks: Int, _ body: @escaping @Sendable (Int) throws -> [UInt8]) -> [Int: Result<[UInt8], any Error>] {
        let results = Mutex([Int: Result<[UInt8], any Error>]())
        let group = DispatchGroup()
        for rank in 0..<ranks {
            DispatchQueue.global().async(group: group) {
                let result = Result { try body(rank) }
                results.withLock { $0[rank] = result }
            }
        }
        group.wait()
        return results.withLock { $0 }
    }

    /// Four ranks, the others started before rank 0 is listening: every one gets rank 0's bytes.
    func testEveryRankReceivesTheMastersBytes() throws {
        let port = Self.port()
        let payload = (0..<128).map { UInt8($0 * 7 % 256) }
        let results = together(4) { rank in
            if rank == 0 {
                usleep(300_000)  // the others are already knocking
                try Rendezvous.serve(payload: payload, worldSize: 4, port: port, timeout: 20)
                return payload
            }
            return try Rendezvous.join(rank: rank, worldSize: 4, masterAddress: "127.0.0.1", port: port, timeout: 20)
        }
        for rank in 0..<4 { XCTAssertEqual(try results[rank]?.get(), payload, "rank \(rank)") }
    }

    /// A rank that never comes: rank 0 stops waiting and names it; a rank with another WORLD_SIZE is refused on
    /// both sides; a rank without a master gives up at its deadline.
    func testMissingMismatchedAndLonelyRanksFailClearly() throws {
        let port = Self.port()
        var results = together(3) { rank in
            if rank == 0 { try Rendezvous.serve(payload: [1], worldSize: 4, port: port, timeout: 1.5); return [] }
            return try Rendezvous.join(rank: rank, worldSize: 4, masterAddress: "127.0.0.1", port: port, timeout: 5)
        }
        XCTAssertThrowsError(try results[0]!.get()) { XCTAssertTrue("\($0)".contains("rank 3 to join"), "\($0)") }
        XCTAssertThrowsError(try results[1]!.get(), "the master closed without an answer")

        let other = Self.port()
        results = together(2) { rank in
            if rank == 0 { try Rendezvous.serve(payload: [1], worldSize: 2, port: other, timeout: 5); return [] }
            return try Rendezvous.join(rank: 1, worldSize: 3, masterAddress: "127.0.0.1", port: other, timeout: 5)
        }
        for rank in 0..<2 {
            XCTAssertThrowsError(try results[rank]!.get()) { XCTAssertTrue("\($0)".contains("WORLD_SIZE=3"), "rank \(rank): \($0)") }
        }

        let started = ContinuousClock.now
        XCTAssertThrowsError(try Rendezvous.join(rank: 1, worldSize: 2, masterAddress: "127.0.0.1", port: Self.port(), timeout: 0.5)) { error in
            XCTAssertTrue("\(error)".contains("waited 0 s for rank 0 at 127.0.0.1"), "\(error)")
        }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(3))
    }

    /// Two ranks with batch 2 each, their gradients averaged, take the steps one process takes with batch 4: the same
    /// losses and, after three SLoPe steps, the same weights (dense parameters and compressed sparse values).
    func testTwoRanksStepAsOneProcessWithTheGlobalBatch() throws {
        try assertTwoRanksStepAsOneProcess(overlapping: false)
    }

    /// The same with gradients averaged bucket by bucket as backward completes them (a communicator that overlaps,
    /// 4 KB buckets): several buckets a step, every gradient in exactly one of them, and the same steps.
    func testBucketsAveragedDuringBackwardStepAsOneProcess() throws {
        try assertTwoRanksStepAsOneProcess(overlapping: true)
    }

    /// A LocalCommunicator that says it overlaps backward, and records what each bucket held.
    final class BucketRecorder: Communicator, @unchecked Sendable {
        let local: LocalCommunicator
        private(set) var buckets: [[Tensor]] = []
        var rank: Int { local.rank }
        var worldSize: Int { local.worldSize }
        var overlapsBackward: Bool { true }
        init(_ local: LocalCommunicator) { self.local = local }
        func averageInPlace(_ tensors: [Tensor]) throws { try local.averageInPlace(tensors) }
        func average(_ values: [Double]) throws -> [Double] { try local.average(values) }
        func broadcast(_ tensors: [Tensor], from root: Int) throws { try local.broadcast(tensors, from: root) }
        func startAveraging(_ tensors: [Tensor]) throws {
            buckets.append(tensors)
            try local.averageInPlace(tensors)
        }
    }

    private func assertTwoRanksStepAsOneProcess(overlapping: Bool) throws {
        let configuration = ModelConfiguration(family: .gpt, vocabularySize: 40, contextLength: 16, layers: 2, hiddenSize: 32, heads: 4,
                                               intermediateSize: 64)
        var state: UInt32 = 11
        let tokens = (0..<3000).map { _ -> Int32 in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Int32(state >> 27) % 40
        }
        let split = TokenLoader.split(tokens, validationFraction: 0.1)
        func trainer(batch: Int) throws -> Trainer {
            let model = try TransformerModel(configuration: configuration, backend: CPUBackend(), seed: 5)
            let options = TrainingOptions(steps: 3, batchSize: batch, sequenceLength: 16, learningRate: 3e-3, warmupSteps: 0, adapterFraction: 0, seed: 9)
            return try Trainer(model: model, options: options, trainTokens: split.train, validationTokens: split.validation)
        }
        let single = try trainer(batch: 4)
        let singleLosses = try (0..<3).map { _ in try single.trainStep().loss }
        let hub = LocalCommunicator.Hub(worldSize: 2)
        let recorders = (0..<2).map { BucketRecorder(LocalCommunicator(rank: $0, hub: hub)) }
        let ranks = try (0..<2).map { rank -> Trainer in
            let t = try trainer(batch: 2)
            t.communicator = overlapping ? recorders[rank] : LocalCommunicator(rank: rank, hub: hub)
            t.allReduceBucketBytes = 4096
            return t
        }
        let results = Mutex([Int: [Double]]())
        let group = DispatchGroup()
        for (rank, t) in ranks.enumerated() {
            nonisolated(unsafe) let t = t
            DispatchQueue.global().async(group: group) {
                let losses = (try? (0..<3).map { _ in try t.trainStep().loss }) ?? []
                results.withLock { $0[rank] = losses }
            }
        }
        group.wait()
        let cpu = CPUBackend()
        for rank in 0..<2 {
            let losses = results.withLock { $0[rank] } ?? []
            XCTAssertEqual(losses.count, 3, "rank \(rank) trained")
            for (a, b) in zip(losses, singleLosses) { XCTAssertEqual(a, b, accuracy: 1e-5, "rank \(rank): the global batch's loss") }
            XCTAssertEqual(ranks[rank].tokensSeen, single.tokensSeen)
            if overlapping {
                let model = ranks[rank].model
                let gradients = model.parameters.compactMap(\.gradient).count + model.sparseWeights.count
                let sent = recorders[rank].buckets
                XCTAssertEqual(sent.map(\.count).reduce(0, +), 3 * gradients, "rank \(rank): every gradient once a step")
                XCTAssertGreaterThan(sent.count, 3 * 2, "rank \(rank): several buckets a step")
                XCTAssertTrue(sent.allSatisfy { bucket in bucket.count == 1 || bucket.dropLast().map(\.byteCount).reduce(0, +) < 4096 },
                              "rank \(rank): a bucket closes once it holds 4 KB")
            }
            XCTAssertFalse(ranks[rank].model.sparseWeights.isEmpty)
            for (mine, reference) in zip(ranks[rank].model.parameters, single.model.parameters) {
                let worst = zip(try cpu.floats(mine.value), try cpu.floats(reference.value)).map { abs($0 - $1) }.max() ?? 1
                XCTAssertLessThan(worst, 2e-5, "rank \(rank): \(mine.name)")
            }
            for (mine, reference) in zip(ranks[rank].model.sparseWeights, single.model.sparseWeights) {
                let worst = zip(try cpu.floats(mine.values), try cpu.floats(reference.values)).map { abs($0 - $1) }.max() ?? 1
                XCTAssertLessThan(worst, 2e-5, "rank \(rank): \(mine.name)")
            }
        }
    }

    /// Broadcast hands every rank the root's values bit for bit (float64 included), over threads and over TCP.
    func testBroadcastIsExactFromAnyRoot() throws {
        let hub = LocalCommunicator.Hub(worldSize: 3)
        let expected = randomValues(7, seed: 5).map { $0 * 1e-3 + 1 / 3 }
        let local = together(3) { rank in
            let cpu = CPUBackend()
            let communicator = LocalCommunicator(rank: rank, hub: hub)
            let wide = try cpu.tensor(rank == 2 ? expected : [Double](repeating: Double(rank), count: 7), shape: [7], dtype: .float64)
            let narrow = try cpu.tensor([Float(rank), -1.25], shape: [2], dtype: .bfloat16)
            try communicator.broadcast([wide, narrow], from: 2)
            return (try cpu.doubles(wide) + cpu.doubles(narrow)).withUnsafeBytes { Array($0) }
        }
        let port = Self.port()
        let socket = together(3) { rank in
            let cpu = CPUBackend()
            let job = DistributedEnvironment(rank: rank, worldSize: 3, localRank: rank, masterAddress: "127.0.0.1", masterPort: port)
            let communicator = try SocketCommunicator.connect(job, backend: cpu, timeout: 20)
            let wide = try cpu.tensor(rank == 2 ? expected : [Double](repeating: Double(rank), count: 7), shape: [7], dtype: .float64)
            let narrow = try cpu.tensor([Float(rank), -1.25], shape: [2], dtype: .bfloat16)
            try communicator.broadcast([wide, narrow], from: 2)
            return (try cpu.doubles(wide) + cpu.doubles(narrow)).withUnsafeBytes { Array($0) }
        }
        for results in [local, socket] {
            for rank in 0..<3 {
                let bytes = try XCTUnwrap(try results[rank]?.get(), "rank \(rank)")
                XCTAssertEqual(bytes.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }, expected + [2, -1.25], "rank \(rank)")
            }
        }
    }

    func testOptimizerShardsBalanceWholeTensors() {
        // Largest first, each to the least-loaded rank: [100, 60, 50, 40, 10, 10] over 2 ranks.
        XCTAssertEqual(OptimizerShards.owners(sizes: [10, 100, 40, 60, 50, 10], worldSize: 2), [1, 0, 0, 1, 1, 1])
        XCTAssertEqual(OptimizerShards.owners(sizes: [5, 5, 5], worldSize: 1), [0, 0, 0])
        // Every rank gets work when there are enough tensors, and loads stay within the largest tensor.
        let sizes = (0..<40).map { ($0 * 7919) % 997 + 1 }
        let owners = OptimizerShards.owners(sizes: sizes, worldSize: 4)
        let loads = (0..<4).map { rank in zip(sizes, owners).filter { $0.1 == rank }.map(\.0).reduce(0, +) }
        XCTAssertLessThanOrEqual(loads.max()! - loads.min()!, sizes.max()!)
        XCTAssertEqual(owners, OptimizerShards.owners(sizes: sizes, worldSize: 4), "the same on every rank")
    }

    /// Three processes' worth of ranks over loopback TCP: every rank gets the mean (tensors too, in place); a rank
    /// sending a different count is named as out of step; a rank that goes away is named by the others.
    func testSocketCommunicatorAveragesAndNamesAFailedRank() throws {
        let port = Self.port()
        @Sendable func job(_ rank: Int, world: Int = 3, port: UInt16) -> DistributedEnvironment {
            DistributedEnvironment(rank: rank, worldSize: world, localRank: rank, masterAddress: "127.0.0.1", masterPort: port)
        }
        let results = together(3) { rank in
            let communicator = try SocketCommunicator.connect(job(rank, port: port), backend: CPUBackend(), timeout: 20)
            let mean = try communicator.average([Double(rank), 10 * Double(rank), -1])
            let cpu = CPUBackend()
            let tensor = try cpu.tensor([Float(rank), 2, Float(rank * rank)], shape: [3], dtype: .float32)
            let other = try cpu.tensor([Float(3 * rank)], shape: [1], dtype: .float32)
            try communicator.averageInPlace([tensor, other])
            let values = mean + (try cpu.floats(tensor) + cpu.floats(other)).map(Double.init)
            return values.withUnsafeBytes { Array($0) }
        }
        for rank in 0..<3 {
            let bytes = try XCTUnwrap(try results[rank]?.get(), "rank \(rank)")
            let values = bytes.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
            XCTAssertEqual(values, [1, 10, -1, 1, 2, Double(Float(5.0 / 3.0)), 3], "rank \(rank)")
        }

        let second = Self.port()
        let broken = together(2) { rank in
            let communicator = try SocketCommunicator.connect(job(rank, world: 2, port: second), backend: CPUBackend(), timeout: 20)
            _ = try communicator.average(rank == 0 ? [1, 2] : [1])
            return []
        }
        XCTAssertThrowsError(try broken[0]!.get()) { XCTAssertTrue("\($0)".contains("rank 1 sent 1 values where this rank has 2"), "\($0)") }

        let third = Self.port()
        let stopped = together(2) { rank in
            let communicator = try SocketCommunicator.connect(job(rank, world: 2, port: third), backend: CPUBackend(), timeout: 20)
            if rank == 1 { return [] }  // goes away: its connection closes with it
            _ = try communicator.average([1])
            return []
        }
        XCTAssertThrowsError(try stopped[0]!.get()) { XCTAssertTrue("\($0)".contains("rank 1 stopped (its connection closed)"), "\($0)") }
    }
}
