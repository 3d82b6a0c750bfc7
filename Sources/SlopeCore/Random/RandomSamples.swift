import RealModule

/// Bulk random samples for tensors (initialisation of billions of weights): one draw from the caller's
/// generator seeds the call, and every chunk of `chunkLength` samples gets its own generator from that seed
/// and its chunk number. Chunks fill in parallel, yet the values depend only on the seed, never on the
/// thread count. Samples are Float: the tensors they fill hold float32 at most.
enum RandomSamples {
    static let chunkLength = 1 << 16

    /// Normal(0, std²), by Box–Muller on pairs (both the cosine and the sine sample are used).
    static func normal(_ count: Int, std: Float, using generator: inout SeededGenerator) -> [Float] {
        fill(count, using: &generator) { random in
            let bits = random.next()
            let u1 = (Float(bits >> 40) + 0.5) * 0x1p-24  // (0, 1): the logarithm stays finite
            let u2 = Float((bits >> 16) & 0xFF_FFFF) * 0x1p-24
            let radius = (-2 * Float.log(u1)).squareRoot() * std
            let angle = 2 * Float.pi * u2
            return (radius * Float.cos(angle), radius * Float.sin(angle))
        }
    }

    /// Uniform(−bound, bound).
    static func uniform(_ count: Int, bound: Float, using generator: inout SeededGenerator) -> [Float] {
        fill(count, using: &generator) { random in
            let bits = random.next()
            return ((Float(bits >> 40) * 0x1p-24 * 2 - 1) * bound, (Float((bits >> 16) & 0xFF_FFFF) * 0x1p-24 * 2 - 1) * bound)
        }
    }

    private static func fill(
        _ count: Int, using generator: inout SeededGenerator, _ pair: (inout SeededGenerator) -> (Float, Float)
    ) -> [Float] {
        let seed = generator.next()
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            guard let start = buffer.baseAddress else { return }
            let output = UncheckedSendable(start)
            parallelFor((count + chunkLength - 1) / chunkLength, grain: 1) { chunks in
                for chunk in chunks {
                    var random = SeededGenerator(seed: seed ^ (UInt64(chunk) &* 0x9E37_79B9_7F4A_7C15))
                    let end = min(count, (chunk + 1) * chunkLength)
                    var index = chunk * chunkLength
                    while index < end {
                        let (first, second) = pair(&random)
                        output.value[index] = first
                        if index + 1 < end { output.value[index + 1] = second }
                        index += 2
                    }
                }
            }
            initialized = count
        }
    }
}
