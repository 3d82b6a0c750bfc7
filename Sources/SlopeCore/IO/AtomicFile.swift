#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files so that a crash or a concurrent reader never sees half of one: the bytes go to a temporary
/// name beside the target, are flushed to disk, and the temporary is renamed over the target (rename(2)
/// replaces it in one step).
///
/// Written with POSIX calls rather than `Data.write(to:)`: on Linux, swift-foundation's writer repeats the
/// start of the buffer after the first 2 GiB (write(2) returns at most 0x7ffff000 bytes per call), which
/// silently corrupted multi-gigabyte checkpoints.
public enum AtomicFile {
    public struct WriteFailure: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "cannot write \(path) (\(reason)); check the folder exists and has space" }

        public init(path: String, reason: String) {
            self.path = path
            self.reason = reason
        }

        /// The failure of a system call, with errno's message.
        init(path: String, call: String) {
            self.init(path: path, reason: "\(call): \(systemErrorText())")
        }
    }

    /// Bytes handed to one pwrite(2) call; the kernel may take fewer, and the loop goes on from there.
    public static let chunkBytes = 1 << 30

    public static func write(_ bytes: some Collection<UInt8>, to path: String) throws {
        try write(to: path) { try $0.append(bytes) }
    }

    public static func write(_ buffer: UnsafeRawBufferPointer, to path: String, chunkBytes: Int = chunkBytes) throws {
        try write(to: path, chunkBytes: chunkBytes) { try $0.append(buffer) }
    }

    /// Streams a file: `body` appends pieces (and may patch bytes already written), so a large file never has
    /// to sit in memory whole. Nothing appears under `path` unless `body` returns normally.
    public static func write(to path: String, chunkBytes: Int = chunkBytes, _ body: (inout Writer) throws -> Void) throws {
        removeStaleTemporaries(of: path)
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw WriteFailure(path: path, call: "open") }
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        do {
            defer { close(descriptor) }
            var writer = Writer(path: path, descriptor: descriptor, chunkBytes: chunkBytes)
            try body(&writer)
            guard fsync(descriptor) == 0 else { throw WriteFailure(path: path, call: "fsync") }
        }
        guard rename(temporary, path) == 0 else { throw WriteFailure(path: path, call: "rename") }
        renamed = true
        syncFolder(of: path)
    }

    /// Appends to the file being written; see ``AtomicFile/write(to:chunkBytes:_:)``.
    public struct Writer {
        let path: String
        let descriptor: Int32
        let chunkBytes: Int
        /// Bytes written so far.
        public private(set) var offset = 0

        public mutating func append(_ buffer: UnsafeRawBufferPointer) throws {
            try put(buffer, at: offset)
            offset += buffer.count
        }

        public mutating func append(_ bytes: some Collection<UInt8>) throws {
            if try bytes.withContiguousStorageIfAvailable({ try append(UnsafeRawBufferPointer($0)) }) == nil {
                try Array(bytes).withUnsafeBytes { try append($0) }
            }
        }

        /// Replaces bytes already written at `position` (e.g. a header field known only at the end).
        public func overwrite(at position: Int, with bytes: [UInt8]) throws {
            guard position >= 0, position + bytes.count <= offset else {
                throw WriteFailure(path: path, reason: "overwrite of bytes \(position)..<\(position + bytes.count) beyond the \(offset) written")
            }
            try bytes.withUnsafeBytes { try put($0, at: position) }
        }

        /// pwrite(2) in pieces of at most `chunkBytes`, going on after short writes and interruptions.
        private func put(_ buffer: UnsafeRawBufferPointer, at position: Int) throws {
            var done = 0
            while done < buffer.count {
                let count = pwrite(descriptor, buffer.baseAddress! + done, min(chunkBytes, buffer.count - done), off_t(position + done))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw WriteFailure(path: path, call: "write")
                }
                done += count
            }
        }
    }

    /// Removes temporaries of `path` (`<path>.tmp-<pid>-<n>`) that a killed writer left: those whose process no
    /// longer runs. A live writer's (another process saving the same file) are kept. Returns the names removed.
    @discardableResult
    public static func removeStaleTemporaries(of path: String) -> [String] {
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { String(path[..<$0]) } ?? "."
        let prefix = (slash.map { String(path[path.index(after: $0)...]) } ?? path) + ".tmp-"
        guard let directory = opendir(folder.isEmpty ? "/" : folder) else { return [] }
        defer { closedir(directory) }
        var removed: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix(prefix), let pid = name.dropFirst(prefix.count).split(separator: "-").first.flatMap({ Int32($0) }),
                  pid != getpid(), kill(pid, 0) != 0, errno == ESRCH
            else { continue }
            if unlink((folder.isEmpty ? "" : folder) + "/" + name) == 0 { removed.append(name) }
        }
        return removed
    }

    /// Flushes the folder entry of `path`, so the rename itself survives a power loss (best effort).
    private static func syncFolder(of path: String) {
        let folder = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let descriptor = open(folder.isEmpty ? "/" : folder, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }
}

