import FoundationEssentials
import SlopeCore
import Synchronization

/// How one sparse GEMM shape runs: on cuSPARSELt in one operand arrangement, or dense on cuBLASLt
/// (when sparse was measured slower, or the shape or pattern is one cuSPARSELt cannot take).
struct SparseGEMMDecision: Codable, Equatable, Sendable {
    enum Route: String, Codable, Sendable {
        case sparseA, sparseB, dense
        /// slope's own 2:4 kernel for a few rows of X (``SkinnySparseGEMM``); also a merged-inference form.
        case skinny
        /// Merged sparse + low-rank inference only: the form chosen (``MergedInferenceForm``; each of its
        /// inner GEMMs decides its own route).
        case folded, factored, stacked

        /// The routes `SLOPE_SPARSE_GEMM` can force.
        static let forcible: [Route] = [.sparseA, .sparseB, .dense, .skinny]
    }

    let route: Route
    /// cuSPARSELt's algorithm (after search) for the sparse routes.
    var algorithm: CuSPARSELtMatmul.Algorithm? = nil
    /// Measured medians in milliseconds, by route name, for the record.
    let milliseconds: [String: Double]
    /// Why a sparse route could not run at this shape, by route name (e.g. cuSPARSELt refusing the plan).
    var failures: [String: String]? = nil
    /// The token count the routes were timed and cuSPARSELt's algorithm searched at (nil in files from before
    /// decisions were shared by a bucket of counts: then the key's own count).
    var searchedTokens: Int? = nil

    /// `algorithm` where it may run at `tokens`: only at the count it was searched at. An algorithm searched at one
    /// count can fail at another of its bucket (on an H100, merged SLoPe steps of new sizes failed so); other
    /// counts (nil) take cuSPARSELt's default algorithm, planned for their own shape.
    func algorithm(at tokens: Int) -> CuSPARSELtMatmul.Algorithm? {
        tokens == (searchedTokens ?? SparseGEMMDecisionStore.tokenBucket(tokens)) ? algorithm : nil
    }
}

/// The decisions, kept in memory and in a JSON file so the search runs once per shape and machine:
/// `$SLOPE_CACHE_DIR/sparse-gemm/<device and library versions>.json`.
final class SparseGEMMDecisionStore: Sendable {
    let path: String?
    private let decisions: Mutex<[String: SparseGEMMDecision]>

    init(path: String?) {
        self.path = path
        var loaded: [String: SparseGEMMDecision] = [:]
        if let path, let data = FileManager.default.contents(atPath: path),
           let decoded = try? JSONDecoder().decode([String: SparseGEMMDecision].self, from: data) {
            loaded = decoded  // an unreadable file is ignored and rewritten: it only costs a new search
        }
        decisions = Mutex(loaded)
    }

    /// The file for one device and library combination, under `cacheDirectory`.
    static func path(cacheDirectory: String?, device: String, cusparseLtVersion: Int, cublasLtVersion: Int, skinnyKernel: String? = nil) -> String? {
        guard let cacheDirectory else { return nil }
        let name = ("\(device)-cusparselt\(cusparseLtVersion)-cublaslt\(cublasLtVersion)" + (skinnyKernel.map { "-skinny-\($0)" } ?? ""))
            .map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }
        return "\(cacheDirectory)/sparse-gemm/\(String(name)).json"
    }

    /// A GEMM with a bias is its own key (`bias` names how it is added): each route adds it differently. The token
    /// count is its ``tokenBucket(_:)``.
    static func key(tokens: Int, outFeatures: Int, inFeatures: Int, dtype: String, bias: String? = nil) -> String {
        "\(dtype) \(tokenBucket(tokens))x\(outFeatures)x\(inFeatures)" + (bias.map { " +\($0)" } ?? "")
    }

    /// The token count a decision is kept under: the count itself up to 64 (decoding's rows, where the best route
    /// moves quickly with the count), above that the next of 96, 128, 192, 256, … (a power of two or 1.5 times one).
    /// A server's steps come in every size — its decoding sequences plus whatever prompts joined — and each new
    /// count was timed anew, cuSPARSELt's algorithm search included (tenths of a second a shape), while the route
    /// chosen does not move within such a bucket. The decision is timed at the first count met in its bucket.
    static func tokenBucket(_ tokens: Int) -> Int {
        guard tokens > 64 else { return tokens }
        var power = 64
        while power < tokens {
            if power + power / 2 >= tokens { return power + power / 2 }
            power *= 2
        }
        return power
    }

    func decision(for key: String) -> SparseGEMMDecision? { decisions.withLock { $0[key] } }

    var all: [String: SparseGEMMDecision] { decisions.withLock { $0 } }

    /// Records a decision and rewrites the file atomically (temporary name, then rename).
    func record(_ decision: SparseGEMMDecision, for key: String) {
        let snapshot = decisions.withLock { decisions in
            decisions[key] = decision
            return decisions
        }
        guard let path else { return }
        do {
            let folder = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(encoder.encode(snapshot), to: path)
        } catch {
            // Not being able to save only means searching again next run.
        }
    }
}
