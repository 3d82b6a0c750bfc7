/// The GLUE tasks' metrics, as their reference implementations (scikit-learn, SciPy) compute them: accuracy, F1 of
/// the positive class, Matthews correlation (CoLA), Pearson and Spearman correlation (STS-B). Each returns nil
/// where the metric is undefined for its input (no examples, mismatched lengths); Matthews, like scikit-learn, is 0
/// when a row or column of the confusion matrix is empty.
public enum TaskMetrics {
    /// The fraction of predictions equal to their label.
    public static func accuracy(predictions: [Int], labels: [Int]) -> Double? {
        guard predictions.count == labels.count, !labels.isEmpty else { return nil }
        return Double(zip(predictions, labels).filter { $0 == $1 }.count) / Double(labels.count)
    }

    /// F1 of class `positive` (MRPC, QQP): 2·precision·recall / (precision + recall); 0 when there is no true positive.
    public static func f1(predictions: [Int], labels: [Int], positive: Int = 1) -> Double? {
        guard predictions.count == labels.count, !labels.isEmpty else { return nil }
        let pairs = zip(predictions, labels)
        let truePositives = Double(pairs.filter { $0 == positive && $1 == positive }.count)
        let predicted = Double(predictions.filter { $0 == positive }.count)
        let actual = Double(labels.filter { $0 == positive }.count)
        guard truePositives > 0 else { return 0 }
        let (precision, recall) = (truePositives / predicted, truePositives / actual)
        return 2 * precision * recall / (precision + recall)
    }

    /// Matthews correlation coefficient of two binary labelings (CoLA): (tp·tn − fp·fn) / √((tp+fp)(tp+fn)(tn+fp)(tn+fn)).
    public static func matthewsCorrelation(predictions: [Int], labels: [Int]) -> Double? {
        guard predictions.count == labels.count, !labels.isEmpty else { return nil }
        var (tp, tn, fp, fn) = (0.0, 0.0, 0.0, 0.0)
        for (p, l) in zip(predictions, labels) {
            switch (p == 1, l == 1) {
            case (true, true): tp += 1
            case (false, false): tn += 1
            case (true, false): fp += 1
            case (false, true): fn += 1
            }
        }
        let denominator = ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)).squareRoot()
        return denominator == 0 ? 0 : (tp * tn - fp * fn) / denominator
    }

    /// Pearson's correlation coefficient (STS-B).
    public static func pearson(_ x: [Double], _ y: [Double]) -> Double? {
        guard x.count == y.count, x.count >= 2 else { return nil }
        let n = Double(x.count)
        let (mx, my) = (x.reduce(0, +) / n, y.reduce(0, +) / n)
        var (sxy, sxx, syy) = (0.0, 0.0, 0.0)
        for (a, b) in zip(x, y) {
            sxy += (a - mx) * (b - my)
            sxx += (a - mx) * (a - mx)
            syy += (b - my) * (b - my)
        }
        guard sxx > 0, syy > 0 else { return nil }
        return sxy / (sxx * syy).squareRoot()
    }

    /// Spearman's rank correlation (STS-B): Pearson's of the ranks, tied values sharing their average rank.
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double? {
        guard x.count == y.count else { return nil }
        return pearson(ranks(x), ranks(y))
    }

    /// 1-based ranks, ties given the mean of the ranks they span (SciPy's `rankdata`, method "average").
    static func ranks(_ values: [Double]) -> [Double] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count)
        var start = 0
        while start < order.count {
            var end = start
            while end + 1 < order.count, values[order[end + 1]] == values[order[start]] { end += 1 }
            let rank = Double(start + end) / 2 + 1
            for position in start...end { ranks[order[position]] = rank }
            start = end + 1
        }
        return ranks
    }
}
