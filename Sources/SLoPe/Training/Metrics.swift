// Training metrics as written to `metrics.jsonl`, and the loss plot drawn from them.

/// One line of `metrics.jsonl`: a training step or a validation pass.
public struct MetricsRecord: Codable, Equatable, Sendable {
    public var step: Int
    public var loss: Double?
    public var validationLoss: Double?
    public var learningRate: Float?
    public var gradientNorm: Double?
    public var tokens: Int?
    public var tokensPerSecond: Double?
    public var mfu: Double?
    public var memoryBytes: Int?
    public var peakMemoryBytes: Int?
    public var elapsedSeconds: Double?
    /// An encoder's two losses (their sum is `loss` or `validationLoss`).
    public var maskedLanguageModelLoss: Double?
    public var nextSentenceLoss: Double?

    public init(
        step: Int, loss: Double? = nil, validationLoss: Double? = nil, learningRate: Float? = nil, gradientNorm: Double? = nil,
        tokens: Int? = nil, tokensPerSecond: Double? = nil, mfu: Double? = nil, memoryBytes: Int? = nil, peakMemoryBytes: Int? = nil,
        elapsedSeconds: Double? = nil, maskedLanguageModelLoss: Double? = nil, nextSentenceLoss: Double? = nil
    ) {
        self.maskedLanguageModelLoss = maskedLanguageModelLoss
        self.nextSentenceLoss = nextSentenceLoss
        self.step = step
        self.loss = loss
        self.validationLoss = validationLoss
        self.learningRate = learningRate
        self.gradientNorm = gradientNorm
        self.tokens = tokens
        self.tokensPerSecond = tokensPerSecond
        self.mfu = mfu
        self.memoryBytes = memoryBytes
        self.peakMemoryBytes = peakMemoryBytes
        self.elapsedSeconds = elapsedSeconds
    }

    enum CodingKeys: String, CodingKey {
        case step, loss, tokens, mfu
        case validationLoss = "val_loss", learningRate = "lr", gradientNorm = "grad_norm", tokensPerSecond = "tokens_per_second"
        case memoryBytes = "memory_bytes", peakMemoryBytes = "peak_memory_bytes", elapsedSeconds = "elapsed_seconds"
        case maskedLanguageModelLoss = "mlm_loss", nextSentenceLoss = "nsp_loss"
    }
}

/// An SVG line plot of training and validation loss over steps, with the corpus floor when known.
public enum LossPlot {
    /// The plot as SVG text: training loss (blue), validation loss (red, with points), the floor dashed.
    public static func svg(_ records: [MetricsRecord], floor: Double?, title: String) -> String {
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

    /// A coordinate or label with `digits` decimals (0 for a value that is not finite, which SVG cannot take).
    static func f(_ value: Double, _ digits: Int = 1) -> String {
        value.isFinite ? fixedPoint(value, decimals: digits) : "0"
    }
}
