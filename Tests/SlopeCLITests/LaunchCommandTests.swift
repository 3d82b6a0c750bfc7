import Foundation
import SLoPe
@testable import SlopeCLI
import XCTest

/// `slope launch` and `slope pretrain` in a data-parallel job, on the CPU (ranks joined by TCP through rank 0).
final class LaunchCommandTests: XCTestCase {
    let tinyRun = ["pretrain", "--device", "cpu", "--batch-size", "2", "--sequence-length", "32", "--corpus-sentences", "400",
                   "--log-every", "1", "--eval-batches", "1", "--adapter-fraction", "0"]

    static func port() -> String { "\(Int.random(in: 20_000...60_000))" }

    static func losses(_ run: URL) throws -> [Double] {
        try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").compactMap {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double
        }
    }

    /// Two ranks with batch 2 train as one process with batch 4 does (same losses, step by step); only rank 0
    /// writes the run folder and prints; the run says how it is parallel.
    func testTwoRanksTrainAsOneProcessWithTheGlobalBatch() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let launched = try runner.run(["launch", "--nproc-per-node", "2", "--master-port", Self.port(), "--"] + tinyRun + ["--steps", "3", "--out", "two"],
                                      in: folder)
        XCTAssertEqual(launched.status, 0, launched.errors)
        XCTAssertTrue(launched.output.contains("parallel    2 ranks, data-parallel over TCP through rank 0: global batch 4 × 32"), launched.output)
        XCTAssertEqual(launched.output.components(separatedBy: "slope pretrain:").count, 2, "one rank reports: \(launched.output)")
        let single = try runner.run(tinyRun + ["--steps", "3", "--out", "one", "--batch-size", "4"], in: folder)
        XCTAssertEqual(single.status, 0, single.errors)
        let (two, one) = (try Self.losses(folder.appendingPathComponent("two")), try Self.losses(folder.appendingPathComponent("one")))
        XCTAssertEqual(two.count, 3)
        XCTAssertEqual(one.count, 3)
        for (a, b) in zip(two, one) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(b)) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("two/checkpoint.safetensors").path))

        // Resumed as one process, the job's checkpoint continues (the loader's position is per global step).
        let resumed = try runner.run(["pretrain", "--out", "two", "--resume", "--steps", "4"], in: folder)
        XCTAssertEqual(resumed.status, 0, resumed.errors)
        XCTAssertEqual(try Self.losses(folder.appendingPathComponent("two")).count, 4)
    }

    /// `--shard-optimizer` (ZeRO-1): the same losses as the unsharded job, a line saying what each rank keeps, a
    /// checkpoint holding every moment (written with the other rank's gathered), and a resume that shards again.
    func testShardedOptimizerTrainsAsTheUnshardedJob() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        func launch(_ out: String, _ extra: [String]) throws -> CommandRunner.Result {
            try runner.run(["launch", "--nproc-per-node", "2", "--master-port", Self.port(), "--"] + tinyRun + ["--steps", "3", "--out", out] + extra,
                           in: folder)
        }
        let sharded = try launch("sharded", ["--shard-optimizer"]), plain = try launch("plain", [])
        XCTAssertEqual(sharded.status, 0, sharded.errors)
        XCTAssertEqual(plain.status, 0, plain.errors)
        XCTAssertTrue(sharded.output.contains("ZeRO-1      optimizer state sharded: this rank keeps the moments of"), sharded.output)
        XCTAssertEqual(try Self.losses(folder.appendingPathComponent("sharded")), try Self.losses(folder.appendingPathComponent("plain")))
        let moments = { (run: String) in
            try SafeTensors.read(folder.appendingPathComponent("\(run)/checkpoint.safetensors").path).tensors.keys.filter { $0.hasPrefix("optimizer.") }.sorted()
        }
        XCTAssertEqual(try moments("sharded"), try moments("plain"), "every moment in the sharded job's checkpoint")
        XCTAssertFalse(try moments("plain").isEmpty)

        let resumed = try runner.run(["launch", "--nproc-per-node", "2", "--master-port", Self.port(), "--", "pretrain", "--out", "sharded", "--resume", "--steps", "4"],
                                     in: folder)
        XCTAssertEqual(resumed.status, 0, resumed.errors)
        XCTAssertTrue(resumed.output.contains("ZeRO-1      optimizer state sharded"), "the run's setting is kept: \(resumed.output)")
        XCTAssertEqual(try Self.losses(folder.appendingPathComponent("sharded")).count, 4)
    }

    /// A rank that dies stops the job: the others are stopped, the launch names the rank and fails.
    func testAFailedRankStopsTheJobAndIsNamed() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let tag = UUID().uuidString
        let metrics = folder.appendingPathComponent("run/metrics.jsonl").path
        let killer = Thread {
            // Rank 1, found by its environment, is killed once the job has trained a step.
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                guard let written = FileManager.default.contents(atPath: metrics), String(decoding: written, as: UTF8.self).contains("\"loss\"") else {
                    usleep(20_000)
                    continue
                }
                for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int32(pid) != nil {
                    guard let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
                    let variables = environment.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                    if variables.contains("SLOPE_TEST_TAG=\(tag)"), variables.contains("RANK=1") {
                        kill(Int32(pid)!, SIGKILL)
                        return
                    }
                }
                usleep(20_000)
            }
        }
        setenv("SLOPE_TEST_TAG", tag, 1)
        defer { unsetenv("SLOPE_TEST_TAG") }
        killer.start()
        let result = try runner.run(["launch", "--nproc-per-node", "2", "--master-port", Self.port(), "--grace-period", "20", "--"]
                                    + tinyRun + ["--steps", "100000", "--out", "run"], in: folder)
        XCTAssertEqual(result.status, 128 + SIGKILL, result.errors)
        XCTAssertTrue(result.errors.contains("error: slope launch: rank 1 was killed by signal 9"), result.errors)
        XCTAssertTrue(result.errors.contains("rank 1 stopped (its connection closed)"), "rank 0 names its peer: \(result.errors)")
    }

    /// What slope launch refuses, and why.
    func testLaunchRefusesWhatCannotRun() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let cases: [([String], String)] = [
            (["launch", "--nproc-per-node", "2"], "name the command each process runs after --"),
            (["launch", "--nproc-per-node", "2", "--", "eval", "x"], "slope launch runs pretrain"),
            (["launch", "--nproc-per-node", "0", "--", "pretrain"], "--nproc-per-node must be at least 1"),
            (["launch", "--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "2", "--", "pretrain"], "--node-rank must be in 0 ..< 2"),
            (["launch", "--nproc-per-node", "1", "--master-port", "70000", "--", "pretrain"], "--master-port must be a TCP port"),
        ]
        for (arguments, words) in cases {
            let result = try runner.run(arguments, in: folder)
            XCTAssertNotEqual(result.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(result.errors.contains(words), "\(words): \(result.errors)")
        }
        let environment = try runner.run(["pretrain", "--device", "cpu"], in: folder, environment: ["WORLD_SIZE": "2", "RANK": "1"])
        XCTAssertNotEqual(environment.status, 0)
        XCTAssertTrue(environment.errors.contains("MASTER_ADDR must be"), environment.errors)
    }
}

/// SLOPE_DISTRIBUTED_TIMEOUT: seconds ≥ 1, else refused with the variable and the value.
final class DistributedTimeoutTests: XCTestCase {
    func testTimeoutVariable() throws {
        XCTAssertEqual(try DataParallelJob.timeout([:]), 600)
        XCTAssertEqual(try DataParallelJob.timeout(["SLOPE_DISTRIBUTED_TIMEOUT": "30"]), 30)
        for bad in ["abc", "0.5", "inf", "-3", ""] {
            XCTAssertThrowsError(try DataParallelJob.timeout(["SLOPE_DISTRIBUTED_TIMEOUT": bad])) { error in
                XCTAssertTrue("\(error)".contains("SLOPE_DISTRIBUTED_TIMEOUT=\(bad) is not a number of seconds ≥ 1"), "\(error)")
            }
        }
        XCTAssertNil(try DataParallelJob.environment([:]), "alone: no job")
        XCTAssertEqual(try DataParallelJob.environment(["SLOPE_DATA_PARALLEL": "1"])?.worldSize, 1, "one rank through the communicator")
    }
}
