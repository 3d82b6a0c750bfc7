/// What the data pipeline needs from a tokenizer.
public protocol TextTokenizer: Sendable {
    var vocabularySize: Int { get }
    func encode(_ text: String) throws -> [Int32]
    /// The ids without the special tokens a post-processor puts around every text (a BOS): what a chat template's
    /// output is encoded with, since the template writes those tokens itself.
    func encodeWithoutAddedTokens(_ text: String) throws -> [Int32]
    func decode(_ tokens: [Int32]) -> String
}

extension TextTokenizer {
    public func encodeWithoutAddedTokens(_ text: String) throws -> [Int32] { try encode(text) }
}

extension ByteTokenizer: TextTokenizer {}
extension BPETokenizer: TextTokenizer {}
