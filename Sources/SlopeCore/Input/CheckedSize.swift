/// Sizes computed from numbers nobody vouches for (file headers, configurations, flags): `nil` where a factor
/// is negative or the result would overflow, so the caller can say which field was wrong instead of the
/// process trapping on an arithmetic overflow.
///
///     guard let bytes = CheckedSize.product(shape + [dtype.byteSize]) else { throw … "shape \(shape) is too large" }
public enum CheckedSize {
    /// The product of `factors` (1 for none), or nil when one is negative or the product overflows `Int`.
    public static func product(_ factors: [Int]) -> Int? {
        var result = 1
        for factor in factors {
            guard factor >= 0 else { return nil }
            let (next, overflow) = result.multipliedReportingOverflow(by: factor)
            guard !overflow else { return nil }
            result = next
        }
        return result
    }

    /// `a + b` for non-negative `a` and `b`, or nil when either is negative or the sum overflows.
    public static func sum(_ a: Int, _ b: Int) -> Int? {
        guard a >= 0, b >= 0 else { return nil }
        let (result, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : result
    }

    /// A stored unsigned count as `Int`, or nil past `Int.max`.
    public static func int(_ value: UInt64) -> Int? { value <= UInt64(Int.max) ? Int(value) : nil }
}
