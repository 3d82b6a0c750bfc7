import FoundationEssentials

/// Writes files so that a crash or a concurrent reader never sees half of one: the bytes go to a temporary
/// name beside the target, which is then renamed over it.
public enum AtomicFile {
    public struct WriteFailure: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "cannot write \(path) (\(reason)); check the folder exists and has space" }
    }

    public static func write(_ data: Data, to path: String) throws {
        let temporary = path + ".tmp-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try data.write(to: URL(fileURLWithPath: temporary))
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw WriteFailure(path: path, reason: "\(error)")
        }
    }
}
