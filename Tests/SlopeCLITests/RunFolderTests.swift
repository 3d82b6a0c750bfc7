import Foundation
import XCTest

/// Run folders and exports are never overwritten by accident, and folder problems are said plainly.
final class RunFolderTests: XCTestCase {
    let tinyRun = ["pretrain", "--device", "cpu", "--steps", "2", "--batch-size", "2", "--sequence-length", "32",
                   "--corpus-sentences", "400", "--log-every", "1", "--eval-batches", "1"]

    func contents(_ folder: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            let url = folder.appendingPathComponent(name)
            if let data = try? Data(contentsOf: url) { files[name] = data }
        }
        return files
    }

    /// A second run into the same folder is refused and leaves the first one's files byte for byte; --force
    /// starts over; --resume continues.
    func testASecondRunIntoTheSameFolderIsRefused() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let first = try runner.run(tinyRun + ["--out", "run"], in: folder)
        XCTAssertEqual(first.status, 0, first.errors)
        let run = folder.appendingPathComponent("run")
        let before = try contents(run)
        XCTAssertNotNil(before["checkpoint.safetensors"])

        let again = try runner.run(tinyRun + ["--out", "run", "--lr", "0.001"], in: folder)
        XCTAssertEqual(again.status, 64, again.errors)
        XCTAssertTrue(again.errors.contains("run already holds a run"), again.errors)
        XCTAssertTrue(again.errors.contains("--resume") && again.errors.contains("--force"), again.errors)
        XCTAssertEqual(try contents(run), before, "the first run's files are untouched")

        let forced = try runner.run(tinyRun + ["--out", "run", "--force", "--seed", "7"], in: folder)
        XCTAssertEqual(forced.status, 0, forced.errors)
        XCTAssertNotEqual(try contents(run)["checkpoint.safetensors"], before["checkpoint.safetensors"], "replaced when forced")
    }

    func testFolderProblemsAreSaidPlainly() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        try Data("not a folder".utf8).write(to: folder.appendingPathComponent("taken"))
        let onFile = try runner.run(tinyRun + ["--out", "taken"], in: folder)
        XCTAssertEqual(onFile.status, 64, onFile.errors)
        XCTAssertTrue(onFile.errors.contains("cannot use taken as a folder: a file with that name exists"), onFile.errors)
        let below = try runner.run(tinyRun + ["--out", "taken/run"], in: folder)
        XCTAssertEqual(below.status, 64, below.errors)
        XCTAssertTrue(below.errors.contains("cannot create the folder taken/run") && below.errors.contains("is a file"), below.errors)
        XCTAssertFalse(onFile.errors.contains("CocoaError") || below.errors.contains("CocoaError"))
    }

    /// Export never writes over the checkpoint it reads, and into a folder with files only with --force.
    func testExportDoesNotOverwrite() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        XCTAssertEqual(try runner.run(tinyRun + ["--out", "run"], in: folder).status, 0)
        let run = folder.appendingPathComponent("run")
        // The checkpoint renamed as model.safetensors, exported into its own folder: the export would replace it.
        try FileManager.default.moveItem(at: run.appendingPathComponent("checkpoint.safetensors"), to: run.appendingPathComponent("model.safetensors"))
        let before = try contents(run)
        let over = try runner.run(["export", "run/model.safetensors", "--out", "run", "--force"], in: folder)
        XCTAssertEqual(over.status, 64, over.errors)
        XCTAssertTrue(over.errors.contains("over the checkpoint being exported"), over.errors)
        let intoFull = try runner.run(["export", "run/model.safetensors", "--out", "run2"], in: folder)
        XCTAssertEqual(intoFull.status, 0, intoFull.errors)
        try Data("mine".utf8).write(to: folder.appendingPathComponent("run2/notes.txt"))
        let again = try runner.run(["export", "run/model.safetensors", "--out", "run2"], in: folder)
        XCTAssertEqual(again.status, 64, again.errors)
        XCTAssertTrue(again.errors.contains("run2 is not empty") && again.errors.contains("--force"), again.errors)
        XCTAssertEqual(try runner.run(["export", "run/model.safetensors", "--out", "run2", "--force"], in: folder).status, 0)
        XCTAssertEqual(try String(contentsOf: folder.appendingPathComponent("run2/notes.txt"), encoding: .utf8), "mine", "other files kept")
        XCTAssertEqual(try contents(run), before, "the checkpoint's folder is untouched")
    }
}
