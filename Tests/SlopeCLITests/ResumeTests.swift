import Foundation
import SlopeData
import XCTest

/// `--resume` is explicit: options that would change the run are refused, the changeable ones are applied and
/// said, the run's own settings (periodic checkpoints) are kept, and changed training text is refused.
final class ResumeTests: XCTestCase {
    let tinyRun = ["pretrain", "--device", "cpu", "--batch-size", "2", "--sequence-length", "32", "--corpus-sentences", "400",
                   "--log-every", "1", "--eval-batches", "1"]

    func testResumeRefusesChangesAndExtendsTheRun() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let first = try runner.run(tinyRun + ["--steps", "3", "--checkpoint-every", "1", "--out", "run"], in: folder)
        XCTAssertEqual(first.status, 0, first.errors)

        let changed = try runner.run(["pretrain", "--out", "run", "--resume", "--lr", "0.1", "--batch-size", "4"], in: folder)
        XCTAssertEqual(changed.status, 64, changed.errors)
        XCTAssertTrue(changed.errors.contains("--batch-size, --lr cannot change when resuming"), changed.errors)

        let shorter = try runner.run(["pretrain", "--device", "cpu", "--out", "run", "--resume", "--steps", "2"], in: folder)
        XCTAssertNotEqual(shorter.status, 0)
        XCTAssertTrue(shorter.errors.contains("at step 3, so it cannot end at step 2"), shorter.errors)

        let extended = try runner.run(["pretrain", "--device", "cpu", "--out", "run", "--resume", "--steps", "5"], in: folder)
        XCTAssertEqual(extended.status, 0, extended.errors)
        XCTAssertTrue(extended.output.contains("at step 3 of 5 (was 3: extended by --steps)"), extended.output)
        XCTAssertTrue(extended.output.contains("periodic: checkpoint at step 4"), "--checkpoint-every kept after the resume: \(extended.output)")
        XCTAssertTrue(extended.output.contains("step 5/5"), extended.output)
    }

    /// A token shard given directly has no manifest: its size and time are recorded and checked on resume.
    func testAChangedTokenShardIsRefusedUnlessRebuilt() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let shard = folder.appendingPathComponent("data.tokens").path
        try TokenShard.write((0..<6000).map { Int32($0 % 200) }, to: shard)
        let first = try runner.run(tinyRun + ["--data", "data.tokens", "--steps", "2", "--out", "run"], in: folder)
        XCTAssertEqual(first.status, 0, first.errors)
        try TokenShard.write((0..<5000).map { Int32($0 % 100) }, to: shard)
        let refused = try runner.run(["pretrain", "--device", "cpu", "--out", "run", "--resume", "--steps", "3"], in: folder)
        XCTAssertEqual(refused.status, 64, refused.errors)
        XCTAssertTrue(refused.errors.contains("the token shard data.tokens changed since the run started"), refused.errors)
        let rebuilt = try runner.run(["pretrain", "--device", "cpu", "--out", "run", "--resume", "--steps", "3", "--rebuild-data"], in: folder)
        XCTAssertEqual(rebuilt.status, 0, rebuilt.errors)
    }

    func testChangedTrainingTextIsRefusedUnlessRebuilt() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let text = folder.appendingPathComponent("text.txt")
        let sentence = "the quick brown fox jumps over the lazy dog and keeps running through the field. "
        try Data(String(repeating: sentence, count: 300).utf8).write(to: text)
        let first = try runner.run(tinyRun + ["--data", "text.txt", "--steps", "2", "--out", "run"], in: folder)
        XCTAssertEqual(first.status, 0, first.errors)
        try Data(String(repeating: sentence, count: 200).utf8).write(to: text)

        let refused = try runner.run(["pretrain", "--device", "cpu", "--out", "run", "--resume", "--steps", "3"], in: folder)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.errors.contains("the data changed since the shards") && refused.errors.contains("text.txt was \(sentence.utf8.count * 300) bytes, now \(sentence.utf8.count * 200)"),
                      refused.errors)
        XCTAssertTrue(refused.errors.contains("--rebuild-data"), refused.errors)

        let rebuilt = try runner.run(["pretrain", "--device", "cpu", "--out", "run", "--resume", "--steps", "3", "--rebuild-data"], in: folder)
        XCTAssertEqual(rebuilt.status, 0, rebuilt.errors)
        XCTAssertTrue(rebuilt.output.contains("step 3/3"), rebuilt.output)
    }
}
