/// What the data pipeline needs from a tokenizer.
public protocol TextTokenizer: Sendable {
    var vocabularySize: Int { get }
    func encode(_ text: String) throws -> [Int32]
    func decode(_ tokens: [Int32]) -> String
}

extension ByteTokenizer: TextTokenizer {}
extension BPETokenizer: TextTokenizer {}
