#if canImport(Glibc)
import Glibc
#endif
#if FUZZING
import CSlopeFuzz
#endif
import FoundationEssentials
import SLoPe
import SlopeData

/// `slope-fuzz`: fuzz targets for every parser of untrusted input (fuzz/README.md).
///
/// Built with `-sanitize=fuzzer,address -DFUZZING` (fuzz/run.sh), it is libFuzzer over the target named by
/// `SLOPE_FUZZ_TARGET`. Built plainly, it replays inputs instead — `slope-fuzz <target> <file or folder>…` runs
/// each file once (the seed corpora in CI, or a crash libFuzzer saved) — and `slope-fuzz seeds <folder>` writes
/// valid seed inputs made by slope's own writers.
@main
struct SlopeFuzz {
    static func main() throws {
        #if FUZZING
        guard FuzzTarget.fromEnvironment() != nil else {
            print("set SLOPE_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
            exit(2)
        }
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            FuzzTarget.fromEnvironment()!.run(Array(UnsafeBufferPointer(start: data, count: size)))
            return 0
        })
        #else
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "seeds", arguments.count == 2 { return try Seeds.write(to: arguments[1]) }
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name), arguments.count >= 2 else {
            print("usage: slope-fuzz <\(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|"))> <file or folder>…  |  slope-fuzz seeds <folder>")
            exit(2)
        }
        var count = 0
        for path in arguments.dropFirst() {
            for file in try files(path) {
                target.run(try FileBytes.read(file, offset: 0, count: FileBytes.size(of: file)))
                count += 1
            }
        }
        print("\(target.rawValue): \(count) inputs replayed, no crash")
        #endif
    }

    /// `path` itself, or the files directly inside it.
    static func files(_ path: String) throws -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return entries.isEmpty && !FileManager.default.fileExists(atPath: path + "/.") ? [path] : entries.sorted().map { path + "/" + $0 }
    }
}
