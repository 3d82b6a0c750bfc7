import Foundation
import SLoPe
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A run killed with SIGKILL at any moment — often in the middle of writing a checkpoint, which it does every
/// step here — always leaves a checkpoint that loads, and the run resumes from it.
final class KillDuringSaveTests: XCTestCase {
    func testCheckpointsSurviveSIGKILL() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let run = folder.appendingPathComponent("run")
        let checkpoint = run.appendingPathComponent("checkpoint.safetensors").path
        let arguments = ["pretrain", "--device", "cpu", "--steps", "100000", "--batch-size", "2", "--sequence-length", "32",
                         "--corpus-sentences", "400", "--log-every", "50", "--eval-batches", "1", "--eval-interval", "0",
                         "--checkpoint-every", "1", "--out", "run"]
        var generator = SystemRandomNumberGenerator()
        var survivors = 0
        for round in 0..<12 {
            let resuming = FileManager.default.fileExists(atPath: checkpoint)
            let process = Process()
            process.executableURL = runner.executable
            process.arguments = resuming ? ["pretrain", "--device", "cpu", "--out", "run", "--resume"] : arguments
            process.currentDirectoryURL = folder
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(UInt32.random(in: 250_000...700_000, using: &generator))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            guard FileManager.default.fileExists(atPath: checkpoint) else { continue }
            survivors += 1
            let file = try SafeTensors.read(checkpoint)  // throws if the file were partial or damaged
            let (_, state) = try Checkpoint.loadModel(file, backend: CPUBackend())
            XCTAssertGreaterThan(state.step, 0, "round \(round)")
        }
        XCTAssertGreaterThan(survivors, 6, "most rounds get far enough to save")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: run.path).filter { $0.contains(".tmp-") }
        XCTAssertLessThanOrEqual(leftovers.count, 2, "only the last killed writes' temporaries, removed by the next save: \(leftovers)")
    }
}
