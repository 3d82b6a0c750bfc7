/// `bytes` in binary units for people ("1.50 GiB", "12.0 MiB", "3.0 KiB"): progress lines, summaries and
/// out-of-memory messages.
public func byteCountText(_ bytes: Int) -> String {
    let value = Double(bytes)
    if value >= Double(1 << 30) { return fixedPoint(value / Double(1 << 30), decimals: 2) + " GiB" }
    if value >= Double(1 << 20) { return fixedPoint(value / Double(1 << 20), decimals: 1) + " MiB" }
    return fixedPoint(value / 1024, decimals: 1) + " KiB"
}
