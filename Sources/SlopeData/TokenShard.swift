import FoundationEssentials
import SlopeCore

/// A file of token ids: an 24-byte header (`SLOPETOK`, format version, bytes per token, count) and the
/// tokens little-endian, 2 bytes each when every id fits, else 4. Written to a temporary name and renamed.
public enum TokenShard {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unreadable(path: String)
        case notAShard(path: String)
        case truncated(path: String, expectedTokens: Int, availableBytes: Int)

        public var description: String {
            switch self {
            case .unreadable(let path): return "cannot read token shard \(path)"
            case .notAShard(let path): return "\(path) is not a slope token shard (bad header); re-create it with slope's tokenizer"
            case let .truncated(path, expected, available):
                return "token shard \(path) is truncated: the header promises \(expected) tokens but only \(available) bytes follow; re-create it"
            }
        }
    }

    static let magic = Array("SLOPETOK".utf8)
    static let version: UInt32 = 1

    public static func write(_ tokens: [Int32], to path: String) throws {
        let width = tokens.allSatisfy { $0 >= 0 && $0 <= Int32(UInt16.max) } ? 2 : 4
        var bytes = magic
        append(version, to: &bytes)
        append(UInt32(width), to: &bytes)
        append(UInt64(tokens.count), to: &bytes)
        bytes.reserveCapacity(bytes.count + tokens.count * width)
        for token in tokens {
            if width == 2 { append(UInt16(truncatingIfNeeded: token), to: &bytes) } else { append(UInt32(bitPattern: token), to: &bytes) }
        }
        try AtomicFile.write(bytes, to: path)
    }

    public static func read(_ path: String) throws -> [Int32] {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure.unreadable(path: path) }
        return try decode([UInt8](data), path: path)
    }

    /// The tokens of a shard's bytes (`path` names it in errors); every header field checked.
    public static func decode(_ bytes: [UInt8], path: String = "<memory>") throws -> [Int32] {
        guard bytes.count >= 24, Array(bytes[0..<8]) == magic, load(UInt32.self, bytes, 8) == version else {
            throw Failure.notAShard(path: path)
        }
        let width = Int(load(UInt32.self, bytes, 12))
        let stored = load(UInt64.self, bytes, 16)
        guard width == 2 || width == 4 else { throw Failure.notAShard(path: path) }
        // The count is untrusted: checked before it sizes anything.
        guard let count = CheckedSize.int(stored), let needed = CheckedSize.product([count, width]), bytes.count - 24 >= needed else {
            throw Failure.truncated(path: path, expectedTokens: Int(clamping: stored), availableBytes: bytes.count - 24)
        }
        return (0..<count).map { index in
            width == 2 ? Int32(load(UInt16.self, bytes, 24 + 2 * index)) : Int32(bitPattern: load(UInt32.self, bytes, 24 + 4 * index))
        }
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private static func load<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], _ offset: Int) -> T {
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + i]) << (8 * i) }
        return value
    }
}
