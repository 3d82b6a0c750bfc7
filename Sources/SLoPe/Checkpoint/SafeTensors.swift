import FoundationEssentials
import SlopeData

/// Hugging Face's safetensors format: an 8-byte little-endian header length, a JSON header mapping each
/// name to its dtype, shape and byte range, then the raw little-endian data.
///
/// Files are streamed to a temporary name in the same folder and renamed, so a crash never leaves a
/// half-written file under the real name; reading leaves tensor bytes in the file until they are loaded.
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

    /// One tensor of a file: its dtype, shape and where its bytes are (read only when asked for).
    public struct Entry: Sendable {
        public let dtype: DType
        public let shape: [Int]
        let path: String
        let offset: Int
        public let byteCount: Int

        /// The stored bytes, read from the file now.
        public func bytes() throws -> [UInt8] { try SafeTensors.bytes(path, offset, byteCount) }
    }

    /// A tensor to write, its bytes produced only when the writer reaches it: one tensor at a time is in
    /// host memory, not the whole file.
    public struct Record {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        let bytes: () throws -> [UInt8]

        public var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
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

    /// `tensor`'s bytes as stored (every dtype is little-endian in memory, as safetensors wants), read through
    /// a byte view of its storage when the file is written: no per-element conversion.
    public static func record(_ name: String, _ tensor: Tensor, backend: any Backend) throws -> Record {
        record(name, dtype: tensor.dtype, shape: tensor.shape, backend: backend) { tensor }
    }

    /// `record` with its bytes read now (a tensor that will not outlive the call that makes the record).
    static func copy(_ record: Record) throws -> Record {
        let bytes = try record.bytes()
        return Record(name: record.name, dtype: record.dtype, shape: record.shape) { bytes }
    }

    /// A tensor computed only when the file is written (a cast, a folded weight), so it lives for one record.
    public static func record(
        _ name: String, dtype: DType, shape: [Int], backend: any Backend, _ make: @escaping () throws -> Tensor
    ) -> Record {
        Record(name: name, dtype: dtype, shape: shape) {
            let tensor = try make()
            return try backend.uint8s(Tensor(shape: [tensor.byteCount], dtype: .uint8, storage: tensor.storage))
        }
    }

    /// The metadata key of the hash of all tensor data, checked by `read`.
    static let dataHashKey = "slope.data_hash"

    /// Writes `records` and `metadata` to `path` atomically (temporary file + rename), streaming one record
    /// at a time. The data hash is known only at the end, so the header carries a placeholder of the same
    /// length that is then overwritten.
    public static func write(_ records: [Record], metadata: [String: String] = [:], to path: String) throws {
        let placeholder = String(repeating: "0", count: 16)
        let metadata = metadata.merging([dataHashKey: placeholder]) { _, hash in hash }
        var offset = 0
        var parts = ["\"__metadata__\":{" + metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            .joined(separator: ",") + "}"]
        for record in records {
            let end = offset + record.byteCount
            let shape = record.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonString(record.name)):{\"dtype\":\"\(dtypeNames[record.dtype]!)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        // Pad the header with spaces so the data starts 8-byte aligned, as the reference implementation does.
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        let hashField = Array("\(jsonString(dataHashKey)):\"".utf8)
        let hashPosition = 8 + header.firstRange(of: hashField)!.upperBound
        try AtomicFile.write(to: path) { file in
            try withUnsafeBytes(of: UInt64(header.count).littleEndian) { try file.append($0) }
            try file.append(header)
            var hash = ContentHash()
            for record in records {
                let bytes = try record.bytes()
                guard bytes.count == record.byteCount else {
                    throw Failure.unexpectedTensor(
                        path: path, name: record.name, expected: "\(record.byteCount) bytes", found: "\(bytes.count) bytes")
                }
                hash.combine(bytes)
                try file.append(bytes)
            }
            try file.overwrite(at: hashPosition, with: Array(hash.hexadecimal.utf8))
        }
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

    /// Reads the header; tensor bytes stay in the file until asked for. When the file carries slope's data
    /// hash, every tensor is read once here (in pieces) to check it.
    public static func read(_ path: String) throws -> File {
        let size: Int
        do {
            size = try FileBytes.size(of: path)
        } catch let failure as FileBytes.ReadFailure {
            throw Failure.unreadable(path: path, reason: failure.reason.contains("No such file") ? "no such file" : failure.reason)
        }
        guard size >= 8 else { throw Failure.corrupt(path: path, reason: "only \(size) bytes") }
        let headerLength = try Self.headerLength(bytes(path, 0, 8), fileSize: size, path: path)
        let (tensors, metadata) = try parseHeader(bytes(path, 8, headerLength), path: path, fileSize: size)
        if let expected = metadata[dataHashKey] {  // files from other writers have none
            var hash = ContentHash()
            for entry in tensors.values.sorted(by: { $0.offset < $1.offset }) { hash.combine(try entry.bytes()) }
            guard hash.hexadecimal == expected else {
                throw Failure.corrupt(path: path, reason: "its tensor data does not match the hash written with it")
            }
        }
        return File(path: path, tensors: tensors, metadata: metadata)
    }

    /// The header of a whole file held in memory, checked as ``read(_:)`` checks it (the data hash aside): what the
    /// fuzz target and tests feed forged files to.
    public static func parse(fileBytes: [UInt8], path: String = "<memory>") throws -> File {
        guard fileBytes.count >= 8 else { throw Failure.corrupt(path: path, reason: "only \(fileBytes.count) bytes") }
        let length = try headerLength(Array(fileBytes[0..<8]), fileSize: fileBytes.count, path: path)
        let (tensors, metadata) = try parseHeader(Array(fileBytes[8..<(8 + length)]), path: path, fileSize: fileBytes.count)
        return File(path: path, tensors: tensors, metadata: metadata)
    }

    /// The little-endian header length of the first 8 bytes, checked against the file's size.
    static func headerLength(_ prefix: [UInt8], fileSize size: Int, path: String) throws -> Int {
        let headerLength = prefix.enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        guard headerLength > 0, headerLength <= size - 8 else {
            throw Failure.corrupt(path: path, reason: "header length \(headerLength) does not fit in \(size) bytes")
        }
        return headerLength
    }

    /// The JSON header's tensor entries and metadata; every number in it checked against a file of `size` bytes.
    static func parseHeader(_ header: [UInt8], path: String, fileSize size: Int) throws -> (tensors: [String: Entry], metadata: [String: String]) {
        guard let object = try? HeaderDecoding.decodeHeader(Data(header)) else {
            throw Failure.corrupt(path: path, reason: "unreadable JSON header")
        }
        let body = 8 + header.count
        var tensors: [String: Entry] = [:]
        for (name, entry) in object.tensors {
            guard let dtype = dtypeNames.first(where: { $0.value == entry.dtype })?.key else {
                throw Failure.corrupt(path: path, reason: "tensor \(name) has unsupported dtype \(entry.dtype)")
            }
            // Every number here is untrusted: checked arithmetic, and the field named when one is wrong.
            guard let count = CheckedSize.product(entry.shape + [dtype.byteSize]) else {
                throw Failure.corrupt(path: path, reason: "tensor \(name) has shape \(entry.shape), whose size is negative or too large to count")
            }
            guard entry.data_offsets.count == 2 else {
                throw Failure.corrupt(path: path, reason: "tensor \(name) has data_offsets \(entry.data_offsets), not [begin, end]")
            }
            let (begin, end) = (entry.data_offsets[0], entry.data_offsets[1])
            guard begin >= 0, end >= begin, let last = CheckedSize.sum(body, end), last <= size else {
                throw Failure.corrupt(
                    path: path, reason: "tensor \(name) needs bytes \(entry.data_offsets) but the file has \(size - body) after the header")
            }
            guard end - begin == count else {
                throw Failure.corrupt(
                    path: path, reason: "tensor \(name) is \(entry.dtype) \(entry.shape), \(count) bytes, but its data_offsets \(entry.data_offsets) hold \(end - begin)")
            }
            tensors[name] = Entry(dtype: dtype, shape: entry.shape, path: path, offset: body + begin, byteCount: count)
        }
        return (tensors, object.metadata)
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

    /// Sum of the tensors' stored bytes (what a file's header promises; checked against a configuration before a
    /// model is built from it).
    public static func tensorBytes(_ file: File) -> Int { file.tensors.values.reduce(0) { $0 + $1.byteCount } }

    /// Bytes `offset ..< offset + count` of the file, a failed read reported as this format's error.
    static func bytes(_ path: String, _ offset: Int, _ count: Int) throws -> [UInt8] {
        do {
            return try FileBytes.read(path, offset: offset, count: count)
        } catch let failure as FileBytes.ReadFailure {
            throw Failure.unreadable(path: path, reason: failure.reason)
        }
    }

    /// Uploads the stored bytes and views them as the entry's dtype and shape.
    static func upload(_ entry: Entry, backend: any Backend) throws -> Tensor {
        let bytes = try backend.tensor(entry.bytes(), shape: [entry.byteCount])
        return Tensor(shape: entry.shape, dtype: entry.dtype, storage: bytes.storage)
    }
}
