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
    }

    /// Bytes handed to one write(2) call; the kernel may take fewer, and the loop goes on from there.
    public static let chunkBytes = 1 << 30

    public static func write(_ bytes: some Collection<UInt8>, to path: String) throws {
        if let written: Void = try bytes.withContiguousStorageIfAvailable({ try write(UnsafeRawBufferPointer($0), to: path) }) {
            return written
        }
        try Array(bytes).withUnsafeBytes { try write($0, to: path) }
    }

    public static func write(_ buffer: UnsafeRawBufferPointer, to path: String, chunkBytes: Int = chunkBytes) throws {
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        func failure(_ call: String) -> WriteFailure {
            WriteFailure(path: path, reason: "\(call): \(String(cString: strerror(errno)))")
        }
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw failure("open") }
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        do {
            defer { close(descriptor) }
            var offset = 0
            while offset < buffer.count {
                let count = systemWrite(descriptor, buffer.baseAddress! + offset, min(chunkBytes, buffer.count - offset))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw failure("write")
                }
                offset += count
            }
            guard fsync(descriptor) == 0 else { throw failure("fsync") }
        }
        guard rename(temporary, path) == 0 else { throw failure("rename") }
        renamed = true
        syncFolder(of: path)
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

/// write(2), under a name that `AtomicFile.write` does not shadow.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
