import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One line of `metrics.jsonl`: a training step or a validation pass.
struct MetricsRecord: Codable {
    var step: Int
    var loss: Double?
    var validationLoss: Double?
    var learningRate: Float?
    var gradientNorm: Double?
    var tokens: Int?
    var tokensPerSecond: Double?
    var mfu: Double?
    var memoryBytes: Int?
    var peakMemoryBytes: Int?
    var elapsedSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case step, loss, tokens, mfu
        case validationLoss = "val_loss", learningRate = "lr", gradientNorm = "grad_norm", tokensPerSecond = "tokens_per_second"
        case memoryBytes = "memory_bytes", peakMemoryBytes = "peak_memory_bytes", elapsedSeconds = "elapsed_seconds"
    }
}

/// Appends JSON lines to a file (kept across resumes: lines past the resumed step are dropped first).
final class MetricsLog {
    let path: String
    private(set) var records: [MetricsRecord] = []

    init(path: String, keepingThrough step: Int) throws {
        self.path = path
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
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var line = try encoder.encode(record)
        line.append(UInt8(ascii: "\n"))
        guard let handle = fopen(path, "a") else { throw ValidationErrorText("cannot append to \(path)") }
        defer { fclose(handle) }
        _ = line.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, handle) }
    }

    private func rewrite() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var data = Data()
        for record in records {
            data.append(try encoder.encode(record))
            data.append(UInt8(ascii: "\n"))
        }
        try data.write(to: URL(fileURLWithPath: path))
    }
}

struct ValidationErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// An SVG line plot of training and validation loss over steps, with the corpus floor when known.
enum LossPlot {
    static func svg(_ records: [MetricsRecord], floor: Double?, title: String) -> String {
        let train = records.compactMap { r in r.loss.map { (Double(r.step), $0) } }
        let validation = records.compactMap { r in r.validationLoss.map { (Double(r.step), $0) } }
        let all = train + validation
        guard !all.isEmpty else { return "<svg xmlns=\"http://www.w3.org/2000/svg\"/>" }
        let (width, height, margin) = (720.0, 420.0, 56.0)
        let maxStep = max(all.map(\.0).max()!, 1)
        let top = all.map(\.1).max()!
        let bottom = min(all.map(\.1).min()!, floor ?? .infinity) * 0.95
        let span = max(top - bottom, 1e-9)
        func x(_ step: Double) -> Double { margin + step / maxStep * (width - 2 * margin) }
        func y(_ loss: Double) -> Double { height - margin - (loss - bottom) / span * (height - 2 * margin) }
        func path(_ points: [(Double, Double)]) -> String {
            points.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(Self.f(x($0.element.0))),\(Self.f(y($0.element.1)))" }.joined(separator: " ")
        }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"\(Int(margin))\" y=\"24\" font-size=\"14\">\(title)</text>\n"
        svg += "<line x1=\"\(margin)\" y1=\"\(height - margin)\" x2=\"\(width - margin)\" y2=\"\(height - margin)\" stroke=\"black\"/>\n"
        svg += "<line x1=\"\(margin)\" y1=\"\(margin)\" x2=\"\(margin)\" y2=\"\(height - margin)\" stroke=\"black\"/>\n"
        for i in 0...4 {
            let loss = bottom + span * Double(i) / 4
            svg += "<text x=\"4\" y=\"\(Self.f(y(loss) + 4))\">\(Self.f(loss, 3))</text>\n"
            let step = maxStep * Double(i) / 4
            svg += "<text x=\"\(Self.f(x(step) - 10))\" y=\"\(Self.f(height - margin + 18))\">\(Int(step))</text>\n"
        }
        svg += "<text x=\"\(Self.f(width / 2))\" y=\"\(Self.f(height - 12))\">step</text>\n"
        if let floor {
            svg += "<line x1=\"\(margin)\" y1=\"\(Self.f(y(floor)))\" x2=\"\(width - margin)\" y2=\"\(Self.f(y(floor)))\" stroke=\"gray\" stroke-dasharray=\"4 4\"/>\n"
            svg += "<text x=\"\(Self.f(width - margin - 120))\" y=\"\(Self.f(y(floor) - 6))\" fill=\"gray\">corpus floor \(Self.f(floor, 3))</text>\n"
        }
        svg += "<path d=\"\(path(train))\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>\n"
        if !validation.isEmpty {
            svg += "<path d=\"\(path(validation))\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n"
            for point in validation {
                svg += "<circle cx=\"\(Self.f(x(point.0)))\" cy=\"\(Self.f(y(point.1)))\" r=\"3\" fill=\"#d62728\"/>\n"
            }
        }
        svg += "<text x=\"\(Self.f(width - margin - 120))\" y=\"44\" fill=\"#1f77b4\">train loss</text>\n"
        svg += "<text x=\"\(Self.f(width - margin - 120))\" y=\"60\" fill=\"#d62728\">validation loss</text>\n"
        return svg + "</svg>\n"
    }

    static func f(_ value: Double, _ digits: Int = 1) -> String { formatted(value, digits: digits) }
}
