import FoundationEssentials
import SLoPe
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Appends JSON lines to a file (kept across resumes: lines past the resumed step are dropped first). Without a
/// path (the ranks of a data-parallel job other than 0) the records are only kept in memory.
final class MetricsLog {
    let path: String?
    private(set) var records: [MetricsRecord] = []

    init(path: String?, keepingThrough step: Int) throws {
        self.path = path
        guard let path else { return }
        if step > 0, let data = FileManager.default.contents(atPath: path) {
            let decoder = JSONDecoder()
            records = String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
                try? decoder.decode(MetricsRecord.self, from: Data($0.utf8))
            }.filter { $0.step <= step }
        }
        try rewrite()
    }

    func append(_ record: MetricsRecord) throws {
        records.append(record)
        guard let path else { return }
        let line = try Self.line(record)
        guard let handle = fopen(path, "a") else { throw ValidationErrorText("cannot append to \(path)") }
        defer { fclose(handle) }
        _ = line.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, handle) }
    }

    private func rewrite() throws {
        guard let path else { return }
        try AtomicFile.write(records.reduce(into: Data()) { $0.append(try Self.line($1)) }, to: path)
    }

    /// One record as a JSON line with sorted keys.
    private static func line(_ record: MetricsRecord) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var line = try encoder.encode(record)
        line.append(UInt8(ascii: "\n"))
        return line
    }
}

struct ValidationErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

