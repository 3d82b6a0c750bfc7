import FoundationEssentials
import SlopeCore

/// Compiled kernel binaries on disk, keyed by a hash of everything that affects the binary:
/// source, target architecture, compiler options and NVRTC version. Lives in `$SLOPE_CACHE_DIR/kernels`,
/// else `~/.cache/slope/kernels`. A damaged or unreadable entry is treated as missing.
struct KernelCache: Sendable {
    let directory: String?

    init(environment: [String: String]) {
        directory = Self.cacheDirectory(environment).map { $0 + "/kernels" }  // nil: nowhere to write, compile every run
    }

    /// slope's cache folder: `$SLOPE_CACHE_DIR`, else `~/.cache/slope`.
    static func cacheDirectory(_ environment: [String: String]) -> String? {
        if let explicit = environment["SLOPE_CACHE_DIR"], !explicit.isEmpty { return explicit }
        if let home = environment["HOME"], !home.isEmpty { return home + "/.cache/slope" }
        return nil
    }

    /// 128-bit FNV-1a of the inputs, as 32 hex digits.
    static func key(source: String, architecture: String, options: [String], compilerVersion: String) -> String {
        var hashes: (UInt64, UInt64) = (0xcbf2_9ce4_8422_2325, 0x6c62_272e_07bb_0142)
        for part in [source, architecture, options.joined(separator: " "), compilerVersion] {
            for byte in part.utf8 + [0] {
                hashes.0 = (hashes.0 ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
                hashes.1 = (hashes.1 ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 &+ 0x9e37_79b9
            }
        }
        func hex(_ value: UInt64) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        return hex(hashes.0) + hex(hashes.1)
    }

    func path(for key: String) -> String? { directory.map { "\($0)/\(key).cubin" } }

    func load(_ key: String) -> [UInt8]? {
        guard let path = path(for: key), let data = FileManager.default.contents(atPath: path), !data.isEmpty else { return nil }
        return [UInt8](data)
    }

    /// Written atomically, so a concurrent reader never sees half a file.
    func store(_ binary: [UInt8], for key: String) {
        guard let directory, let path = path(for: key) else { return }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try AtomicFile.write(binary, to: path)
        } catch {
            // A cache that cannot be written only costs compile time on the next run.
        }
    }
}
