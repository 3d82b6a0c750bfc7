import FoundationEssentials
import SlopeData

/// Hugging Face's safetensors format: an 8-byte little-endian header length, a JSON header mapping each
/// name to its dtype, shape and byte range, then the raw little-endian data.
///
/// Files are written to a temporary name in the same folder and renamed, so a crash never leaves a
/// half-written file under the real name.
public enum SafeTensors {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case corrupt(path: String, reason: String)
        case missingTensor(path: String, name: String)
        case unexpectedTensor(path: String, name: String, expected: String, found: String)

        public var description: String {
            switch self {
            case let .unreadable(path, reason): return "cannot read \(path): \(reason)"
            case let .corrupt(path, reason):
                return "\(path) is not a valid safetensors file (\(reason)); it may be truncated or damaged, use an earlier checkpoint"
            case let .missingTensor(path, name): return "\(path) has no tensor '\(name)'; was it written for another model or configuration?"
            case let .unexpectedTensor(path, name, expected, found):
                return "\(path): tensor '\(name)' is \(found) but the model needs \(expected)"
            }
        }
    }

    /// One tensor of a file: its dtype, shape and bytes.
    public struct Entry: Sendable {
        public let dtype: DType
        public let shape: [Int]
        public let data: Data
    }

    /// A tensor to write: host bytes in `dtype`'s little-endian layout.
    public struct Record: Sendable {
        public let name: String
        public let entry: Entry
    }

    public struct File: Sendable {
        public let path: String
        public let tensors: [String: Entry]
        public let metadata: [String: String]

        public func entry(_ name: String) throws -> Entry {
            guard let entry = tensors[name] else { throw Failure.missingTensor(path: path, name: name) }
            return entry
        }

        /// The tensor `name` uploaded to `backend` (in the stored dtype).
        public func tensor(_ name: String, backend: any Backend) throws -> Tensor {
            let entry = try entry(name)
            return try SafeTensors.upload(entry, backend: backend)
        }

        /// Copies tensor `name` into `destination`, which must have the same shape (dtype converted).
        public func load(_ name: String, into destination: Tensor, backend: any Backend) throws {
            let entry = try entry(name)
            guard entry.shape == destination.shape else {
                throw Failure.unexpectedTensor(path: path, name: name, expected: "\(destination.shape)", found: "\(entry.shape)")
            }
            try backend.copy(SafeTensors.upload(entry, backend: backend), into: destination)
        }
    }

    static let dtypeNames: [DType: String] = [
        .float32: "F32", .float64: "F64", .float16: "F16", .bfloat16: "BF16", .int32: "I32", .uint8: "U8",
    ]

    // MARK: Writing

    /// The host bytes of `tensor` as stored (every dtype is little-endian in memory, as safetensors wants),
    /// read through a byte view of its storage: no per-element conversion, so large models save quickly.
    public static func record(_ name: String, _ tensor: Tensor, backend: any Backend) throws -> Record {
        let bytes = try backend.uint8s(Tensor(shape: [tensor.byteCount], dtype: .uint8, storage: tensor.storage))
        return Record(name: name, entry: Entry(dtype: tensor.dtype, shape: tensor.shape, data: Data(bytes)))
    }

    /// Writes `records` and `metadata` to `path` atomically (temporary file + rename).
    /// The metadata key of the hash of all tensor data, checked by `read`.
    static let dataHashKey = "slope.data_hash"

    public static func write(_ records: [Record], metadata: [String: String] = [:], to path: String) throws {
        var header = "{"
        var offset = 0
        var parts: [String] = []
        var hash = ContentHash()
        for record in records { hash.combine(record.entry.data) }
        let metadata = metadata.merging([dataHashKey: hash.hexadecimal]) { _, computed in computed }
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            parts.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        for record in records {
            let end = offset + record.entry.data.count
            let shape = record.entry.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonString(record.name)):{\"dtype\":\"\(dtypeNames[record.entry.dtype]!)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        header += parts.joined(separator: ",") + "}"
        // Pad the header with spaces so the data starts 8-byte aligned, as the reference implementation does.
        while (header.utf8.count % 8) != 0 { header += " " }
        var file = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: Array(header.utf8))
        for record in records { file.append(record.entry.data) }
        try AtomicFile.write(file, to: path)
    }

    static func jsonString(_ text: String) -> String {
        var escaped = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            default:
                if scalar.value < 0x20 {
                    escaped += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return escaped + "\""
    }

    // MARK: Reading

    private struct HeaderEntry: Decodable {
        let dtype: String
        let shape: [Int]
        let data_offsets: [Int]
    }

    public static func read(_ path: String) throws -> File {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
        }
        guard data.count >= 8 else { throw Failure.corrupt(path: path, reason: "only \(data.count) bytes") }
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        guard headerLength > 0, headerLength <= data.count - 8 else {
            throw Failure.corrupt(path: path, reason: "header length \(headerLength) does not fit in \(data.count) bytes")
        }
        let headerData = data.subdata(in: 8..<(8 + headerLength))
        guard let object = try? HeaderDecoding.decodeHeader(headerData) else {
            throw Failure.corrupt(path: path, reason: "unreadable JSON header")
        }
        let body = 8 + headerLength
        var tensors: [String: Entry] = [:]
        var stored: [(offset: Int, data: Data)] = []
        for (name, entry) in object.tensors {
            guard let dtype = dtypeNames.first(where: { $0.value == entry.dtype })?.key else {
                throw Failure.corrupt(path: path, reason: "tensor \(name) has unsupported dtype \(entry.dtype)")
            }
            let count = entry.shape.reduce(1, *) * dtype.byteSize
            guard entry.data_offsets.count == 2, entry.data_offsets[1] - entry.data_offsets[0] == count, entry.data_offsets[0] >= 0,
                  body + entry.data_offsets[1] <= data.count
            else {
                throw Failure.corrupt(
                    path: path, reason: "tensor \(name) needs bytes \(entry.data_offsets) but the file has \(data.count - body) after the header")
            }
            let bytes = data.subdata(in: (body + entry.data_offsets[0])..<(body + entry.data_offsets[1]))
            tensors[name] = Entry(dtype: dtype, shape: entry.shape, data: bytes)
            stored.append((entry.data_offsets[0], bytes))
        }
        if let expected = object.metadata[dataHashKey] {  // files from other writers have none
            var hash = ContentHash()
            for tensor in stored.sorted(by: { $0.offset < $1.offset }) { hash.combine(tensor.data) }
            guard hash.hexadecimal == expected else {
                throw Failure.corrupt(path: path, reason: "its tensor data does not match the hash written with it")
            }
        }
        return File(path: path, tensors: tensors, metadata: object.metadata)
    }

    /// Decodes the header: tensor entries plus the optional `__metadata__` string map.
    private enum HeaderDecoding {
        struct Header {
            var tensors: [String: HeaderEntry] = [:]
            var metadata: [String: String] = [:]
        }

        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        struct Wrapper: Decodable {
            let header: Header
            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: AnyKey.self)
                var header = Header()
                for key in container.allKeys {
                    if key.stringValue == "__metadata__" {
                        header.metadata = try container.decode([String: String].self, forKey: key)
                    } else {
                        header.tensors[key.stringValue] = try container.decode(HeaderEntry.self, forKey: key)
                    }
                }
                self.header = header
            }
        }

        static func decodeHeader(_ data: Data) throws -> Header {
            try JSONDecoder().decode(Wrapper.self, from: data).header
        }
    }

    /// Uploads the stored bytes and views them as the entry's dtype and shape.
    static func upload(_ entry: Entry, backend: any Backend) throws -> Tensor {
        let bytes = try backend.tensor([UInt8](entry.data), shape: [entry.data.count])
        return Tensor(shape: entry.shape, dtype: entry.dtype, storage: bytes.storage)
    }
}
