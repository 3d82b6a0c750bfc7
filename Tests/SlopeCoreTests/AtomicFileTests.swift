#if canImport(Glibc)
import Glibc
#endif
import SlopeCore
import XCTest

final class AtomicFileTests: XCTestCase {
    private func temporaryFolder() throws -> String {
        let folder = NSTemporaryDirectory() + "slope-atomic-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: folder) }
        return folder
    }

    /// Many short write(2) calls must still lay the bytes down in order (the bug this writer replaces
    /// repeated the buffer's start after the first call's limit).
    func testChunkedWritesKeepEveryByteInOrder() throws {
        let path = try temporaryFolder() + "/chunks.bin"
        let bytes = (0..<10_007).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        try bytes.withUnsafeBytes { try AtomicFile.write($0, to: path, chunkBytes: 97) }
        XCTAssertEqual(FileManager.default.contents(atPath: path).map { [UInt8]($0) }, bytes)
    }

    func testReplacesAnExistingFileAndLeavesNoTemporary() throws {
        let folder = try temporaryFolder()
        let path = folder + "/file.txt"
        try AtomicFile.write(Array("first, longer version".utf8), to: path)
        try AtomicFile.write(Data("second".utf8), to: path)
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data("second".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["file.txt"])
    }

    /// Temporaries a killed writer left (its process is gone) are removed by the next write of the same file;
    /// a running process's are kept, and so are other files' temporaries.
    func testStaleTemporariesOfAKilledWriterAreRemoved() throws {
        let folder = try temporaryFolder()
        let path = folder + "/checkpoint.safetensors"
        let stale = "checkpoint.safetensors.tmp-999999999-42", live = "checkpoint.safetensors.tmp-\(getppid())-7"
        let other = "metrics.jsonl.tmp-999999999-1"
        for name in [stale, live, other] { try Data("partial".utf8).write(to: URL(fileURLWithPath: folder + "/" + name)) }
        try AtomicFile.write(Array("new".utf8), to: path)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: folder)), ["checkpoint.safetensors", live, other])
    }

    func testUnwritableFolderSaysWhichPathAndWhy() throws {
        XCTAssertThrowsError(try AtomicFile.write([1, 2, 3], to: "/nonexistent-slope-folder/file.bin")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("/nonexistent-slope-folder/file.bin") && text.contains("No such file"), text)
        }
    }

    func testStreamingWriterAppendsPatchesAndReadsBackInRanges() throws {
        let path = try temporaryFolder() + "/stream.bin"
        try AtomicFile.write(to: path, chunkBytes: 5) { file in
            try file.append(Array("header:????;".utf8))
            try file.append(Array(repeating: UInt8(ascii: "x"), count: 23))
            XCTAssertEqual(file.offset, 35)
            try file.overwrite(at: 7, with: Array("done".utf8))
            XCTAssertThrowsError(try file.overwrite(at: 33, with: [1, 2, 3]), "beyond what was written")
        }
        XCTAssertEqual(try FileBytes.size(of: path), 35)
        XCTAssertEqual(String(decoding: try FileBytes.read(path, offset: 0, count: 12), as: UTF8.self), "header:done;")
        XCTAssertEqual(try FileBytes.read(path, offset: 30, count: 5), Array(repeating: UInt8(ascii: "x"), count: 5))
        XCTAssertThrowsError(try FileBytes.read(path, offset: 30, count: 6)) { XCTAssertTrue("\($0)".contains("ends at byte 35"), "\($0)") }
        XCTAssertThrowsError(try FileBytes.size(of: path + ".missing")) { XCTAssertTrue("\($0)".contains("No such file"), "\($0)") }
    }

    func testAFailingBodyLeavesNothingBehind() throws {
        let folder = try temporaryFolder()
        struct Stop: Error {}
        XCTAssertThrowsError(try AtomicFile.write(to: folder + "/never.bin") { file in
            try file.append([1, 2, 3])
            throw Stop()
        })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), [])
    }
}
