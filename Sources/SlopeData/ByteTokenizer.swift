/// The default tokenizer: one token per UTF-8 byte (0…255) plus an end-of-text token (256).
/// Needs no files, round-trips any text exactly, and is what the embedded corpus is measured in.
public struct ByteTokenizer: Sendable, Equatable {
    public static let endOfText: Int32 = 256

    public init() {}

    public var vocabularySize: Int { 257 }

    public func encode(_ text: String) -> [Int32] { text.utf8.map { Int32($0) } }

    /// Bytes of `tokens` (end-of-text tokens skipped) decoded as UTF-8, invalid sequences replaced.
    public func decode(_ tokens: [Int32]) -> String {
        String(decoding: tokens.compactMap { (0...255).contains($0) ? UInt8($0) : nil }, as: UTF8.self)
    }
}
