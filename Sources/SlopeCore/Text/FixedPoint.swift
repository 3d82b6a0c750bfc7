/// `value` with exactly `decimals` digits after the point, rounded half away from zero ("12.50", "-0.03"),
/// for tables, progress lines and plots, without Foundation's formatters (the library uses
/// FoundationEssentials only) and without the exponent notation of `"\(value)"` for small numbers.
public func fixedPoint(_ value: Double, decimals: Int) -> String {
    guard value.isFinite else { return value.isNaN ? "nan" : (value < 0 ? "-inf" : "inf") }
    var scale = 1.0
    for _ in 0..<max(decimals, 0) { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9e15 else { return "\(value)" }  // beyond Int's exact range: leave it to Swift
    let units = Int(scaled), unit = Int(scale)
    let (whole, fraction) = (units / unit, units % unit)
    let sign = value < 0 && units > 0 ? "-" : ""
    guard decimals > 0 else { return sign + "\(whole)" }
    let fractionText = String(fraction)
    return sign + "\(whole)." + String(repeating: "0", count: decimals - fractionText.count) + fractionText
}
