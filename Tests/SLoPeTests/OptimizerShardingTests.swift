import Dispatch
import FoundationEssentials
import SLoPe
import SlopeData
import Synchronization
import XCTest

/// ZeRO-1: ranks that shard the optimizer state take the unsharded run's steps bit for bit, each keeping part of the
/// moments; their checkpoint is the unsharded one, byte for byte, and resumes sharded at another world size.
final class OptimizerShardingTests: XCTestCase {
    let configuration = ModelConfiguration(
        family: .gpt, vocabularySize: 40, contextLength: 16, layers: 2, hiddenSize: 32, heads: 4, intermediateSize: 64)
    lazy var split: (train: [Int32], validation: [Int32]) = {
        var state: UInt32 = 3
        let tokens = (0..<4000).map { _ -> Int32 in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Int32(state >> 27) % 40
        }
        return TokenLoader.split(tokens, validationFraction: 0.1)
    }()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-zero-\(UUID().uuidString)").path

    override func setUpWithError() throws { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

    /// Six SLoPe steps (mask re-selected every other step, adapters attached for the last two): losses in trainStep
    /// results, then every trained tensor's bytes.
    func options(_ rule: UpdateRule) -> TrainingOptions {
        TrainingOptions(
            steps: 6, batchSize: 2, sequenceLength: 16, learningRate: 3e-3, warmupSteps: 0, adapterFraction: 0.34, adapterRank: 4,
            maskChangeFrequency: 2, seed: 4, optimizer: rule)
    }

    /// Runs `body` on `worldSize` ranks (threads) over one hub, each with its own trainer from `make`.
    func ranks<T: Sendable>(
        _ worldSize: Int, make: @escaping (Int) throws -> Trainer, sharded: Bool, _ body: @escaping (Int, Trainer) throws -> T
    ) throws -> [T] {
        let hub = LocalCommunicator.Hub(worldSize: worldSize)
        let results = Mutex([Int: Result<T, any Error>]())
        let group = DispatchGroup()
        for rank in 0..<worldSize {
            nonisolated(unsafe) let make = make
            nonisolated(unsafe) let body = body
            DispatchQueue.global().async(group: group) {
                let result = Result {
                    let trainer = try make(rank)
                    trainer.communicator = LocalCommunicator(rank: rank, hub: hub)
                    trainer.shardsOptimizerState = sharded
                    return try body(rank, trainer)
                }
                results.withLock { $0[rank] = result }
            }
        }
        group.wait()
        return try (0..<worldSize).map { rank in try XCTUnwrap(results.withLock { $0[rank] }).get() }
    }

    func fresh(_ rule: UpdateRule) -> (Int) throws -> Trainer {
        { [configuration, split] _ in
            let model = try TransformerModel(configuration: configuration, backend: CPUBackend(), seed: 5)
            return try Trainer(model: model, options: self.options(rule), trainTokens: split.train, validationTokens: split.validation)
        }
    }

    /// A rank's outcome: losses, this rank's moment bytes after the steps, and every trained tensor's bytes.
    struct Outcome: Sendable, Equatable {
        var losses: [Double] = []
        var stateBytes = 0
        var tensors: [[UInt8]] = []
    }

    static func tensors(_ trainer: Trainer) throws -> [[UInt8]] {
        let cpu = CPUBackend()
        let values = trainer.model.parameters.map(\.value) + trainer.model.sparseWeights.flatMap { $0.stateTensors().map(\.tensor) }
        return try values.map { try cpu.uint8s(Tensor(shape: [$0.byteCount], dtype: .uint8, storage: $0.storage)) }
    }

    /// `steps` steps with a checkpoint written after `saveAfter` (sharded: by every rank; unsharded: rank 0).
    func train(_ trainer: Trainer, rank: Int, steps: Int, saveAfter: Int? = nil, to path: String = "") throws -> Outcome {
        var outcome = Outcome()
        for step in 1...steps {
            outcome.losses.append(try trainer.trainStep().loss)
            if step == saveAfter, trainer.shardsOptimizerState || rank == 0 { try Checkpoint.save(trainer, to: path) }
        }
        outcome.stateBytes = trainer.optimizerStateBytes
        outcome.tensors = try Self.tensors(trainer)
        return outcome
    }

    func testShardedRanksStepAsUnshardedOnesAndCheckpointTheSameBytes() throws {
        for rule in [UpdateRule.adamw, .lamb] {
            let plainPath = folder + "/plain-\(rule).safetensors", shardedPath = folder + "/sharded-\(rule).safetensors"
            let plain = try ranks(2, make: fresh(rule), sharded: false) { try self.train($1, rank: $0, steps: 6, saveAfter: 3, to: plainPath) }
            let sharded = try ranks(2, make: fresh(rule), sharded: true) { try self.train($1, rank: $0, steps: 6, saveAfter: 3, to: shardedPath) }
            XCTAssertTrue(plain[0].tensors.count > 20, "\(rule): adapters, sparse and dense tensors compared")
            for rank in 0..<2 {
                XCTAssertEqual(sharded[rank].losses, plain[rank].losses, "\(rule) rank \(rank): the same losses")
                XCTAssertTrue(sharded[rank].tensors == plain[rank].tensors, "\(rule) rank \(rank): every trained tensor bit for bit")
                XCTAssertLessThan(sharded[rank].stateBytes, plain[rank].stateBytes * 3 / 4, "\(rule) rank \(rank): part of the moments")
            }
            XCTAssertEqual(sharded[0].stateBytes + sharded[1].stateBytes, plain[0].stateBytes, "\(rule): every moment kept exactly once")
            XCTAssertEqual(
                FileManager.default.contents(atPath: shardedPath), FileManager.default.contents(atPath: plainPath),
                "\(rule): the sharded ranks' checkpoint is the unsharded one, byte for byte")
        }
    }

    /// A checkpoint resumes sharded at another world size (3 ranks) exactly as unsharded at that size, each rank
    /// loading only the moments it owns there.
    func testCheckpointResumesShardedAtAnotherWorldSize() throws {
        let path = folder + "/two.safetensors"
        _ = try ranks(2, make: fresh(.adamw), sharded: true) { try self.train($1, rank: $0, steps: 3, saveAfter: 3, to: path) }
        let file = try SafeTensors.read(path)
        let split = split
        let resumed = { (sharded: Bool) in
            try self.ranks(3, make: { _ in
                try Checkpoint.resume(file, backend: CPUBackend(), trainTokens: split.train, validationTokens: split.validation)
            }, sharded: sharded) { rank, trainer -> (Int, Outcome) in
                let loaded = trainer.optimizerStateBytes
                return (loaded, try self.train(trainer, rank: rank, steps: 3))
            }
        }
        let plain = try resumed(false), sharded = try resumed(true)
        for rank in 0..<3 {
            XCTAssertEqual(sharded[rank].1.losses, plain[rank].1.losses, "rank \(rank): the same steps after the resume")
            XCTAssertTrue(sharded[rank].1.tensors == plain[rank].1.tensors, "rank \(rank): the same tensors")
        }
        XCTAssertEqual(sharded.map(\.1.stateBytes).reduce(0, +), plain[0].1.stateBytes)
        XCTAssertEqual(plain.map(\.0), Array(repeating: plain[0].0, count: 3), "unsharded: every rank loads every moment")
        XCTAssertGreaterThan(plain[0].0, 0)
    }

    /// Resume through ``Checkpoint/resume``'s own sharding: each rank holds only its owners' moments from the load
    /// on (not the whole state first), and the steps after it are the unsharded run's.
    func testShardedResumeLoadsOnlyOwnedMoments() throws {
        let path = folder + "/two.safetensors"
        _ = try ranks(2, make: fresh(.adamw), sharded: false) { try self.train($1, rank: $0, steps: 3, saveAfter: 3, to: path) }
        let file = try SafeTensors.read(path)
        let split = split
        let hub = LocalCommunicator.Hub(worldSize: 2)
        let loaded = try (0..<2).map { rank in
            let trainer = try Checkpoint.resume(
                file, backend: CPUBackend(), trainTokens: split.train, validationTokens: split.validation,
                communicator: LocalCommunicator(rank: rank, hub: hub), shardingOptimizerState: true)
            return trainer.optimizerStateBytes
        }
        let whole = try Checkpoint.resume(file, backend: CPUBackend(), trainTokens: split.train, validationTokens: split.validation)
        XCTAssertEqual(loaded.reduce(0, +), whole.optimizerStateBytes, "the moments split between the ranks, none twice")
        XCTAssertTrue(loaded.allSatisfy { $0 > 0 && $0 < whole.optimizerStateBytes }, "\(loaded) of \(whole.optimizerStateBytes)")
    }
}
