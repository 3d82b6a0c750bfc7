import Foundation
import XCTest

/// Runs the `slope` executable built beside the test bundle, as a user would: arguments in, exit status and
/// both output streams back.
struct CommandRunner {
    struct Result {
        let status: Int32
        let output: String
        let errors: String
    }

    let executable: URL

    init() throws {
        // The test bundle and the executable are built into the same folder (.build/<configuration>/).
        let folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [folder, folder.deletingLastPathComponent()].map { $0.appendingPathComponent("slope") }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw XCTSkip("no slope executable beside the tests (looked in \(candidates.map(\.path)))")
        }
        executable = found
    }

    /// Runs slope with `arguments` in `folder`, with `environment` on top of this process's variables.
    func run(_ arguments: [String], in folder: URL, environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.currentDirectoryURL = folder
        let (output, errors) = (Pipe(), Pipe())
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        let complained = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: printed, as: UTF8.self),
                      errors: String(decoding: complained, as: UTF8.self))
    }

    /// A fresh folder removed when the test ends.
    static func temporaryFolder(_ test: XCTestCase) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        return folder
    }
}
