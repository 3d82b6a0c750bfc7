import FoundationEssentials

/// A model's chat template (Jinja, as transformers' `apply_chat_template` renders it): turns a conversation into the
/// prompt text the model was tuned on. The subset of Jinja chat templates use is implemented here (see
/// docs/serving.md); a template using anything else fails to load with the construct named.
public struct ChatTemplate: Sendable {
    public let source: String
    /// `bos_token`, `eos_token`, `unk_token`, `pad_token` as the template sees them (tokenizer_config.json's).
    public let specialTokens: [String: String]
    private let nodes: [TemplateNode]

    public init(_ source: String, specialTokens: [String: String] = [:]) throws {
        self.source = source
        self.specialTokens = specialTokens
        nodes = try TemplateParser.parse(source)
    }

    /// The prompt for `messages` (each a dictionary with at least `role` and `content`); with `addGenerationPrompt`,
    /// ending where the assistant's reply begins. `variables` adds to or overrides what the template sees
    /// (`tools`, `documents`, …).
    public func render(messages: [TemplateValue], addGenerationPrompt: Bool, variables: [String: TemplateValue] = [:]) throws -> String {
        var globals: [String: TemplateValue] = specialTokens.mapValues { .string($0) }
        globals["messages"] = .list(messages)
        globals["add_generation_prompt"] = .bool(addGenerationPrompt)
        globals.merge(variables) { $1 }
        return try TemplateRenderer(root: TemplateScope(parent: nil, globals)).render(nodes)
    }

    /// The token ending an assistant's turn: the template's `eos_token` (`<|im_end|>`, `<|eot_id|>`, …) where it is one
    /// token of `tokenizer`.
    public func endOfTurn(_ tokenizer: any TextTokenizer) -> Int32? {
        guard let eos = specialTokens["eos_token"], let ids = try? tokenizer.encodeWithoutAddedTokens(eos), ids.count == 1 else { return nil }
        return ids[0]
    }

    /// The prompt for one user message, ending where the assistant's reply begins.
    public func prompt(userMessage: String) throws -> String {
        try render(messages: [.dictionary(["role": "user", "content": .string(userMessage)])], addGenerationPrompt: true)
    }

    /// The chat template of a model folder (transformers' layout): `chat_template.jinja`, else tokenizer_config.json's
    /// `chat_template` (a string, or a list of named templates: the one named "default"); nil when it has none.
    /// Special tokens come from tokenizer_config.json (strings or `{"content": …}` objects).
    public static func find(inFolder folder: String) throws -> ChatTemplate? {
        let configPath = folder + "/tokenizer_config.json"
        var config: TokenizerConfig? = nil
        if let data = FileManager.default.contents(atPath: configPath) {
            do {
                config = try JSONDecoder().decode(TokenizerConfig.self, from: data)
            } catch {
                throw TemplateError("\(configPath) cannot be read as a tokenizer config: \(error)")
            }
        }
        let specialTokens = config?.specialTokens ?? [:]
        let jinjaPath = folder + "/chat_template.jinja"
        if let data = FileManager.default.contents(atPath: jinjaPath) {
            return try load(String(decoding: data, as: UTF8.self), from: jinjaPath, specialTokens: specialTokens)
        }
        guard let source = config?.chatTemplate else { return nil }
        return try load(source, from: configPath, specialTokens: specialTokens)
    }

    /// A template from a file given by the user: a .jinja file, or a tokenizer_config.json (its special tokens too).
    public static func load(file path: String) throws -> ChatTemplate {
        guard let data = FileManager.default.contents(atPath: path) else { throw TemplateError("cannot read the chat template file \(path)") }
        if path.hasSuffix(".json") {
            let folder = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
            guard path.hasSuffix("tokenizer_config.json"), let template = try find(inFolder: folder) else {
                let config = try? JSONDecoder().decode(TokenizerConfig.self, from: data)
                guard let source = config?.chatTemplate else { throw TemplateError("\(path) holds no chat_template") }
                return try Self.load(source, from: path, specialTokens: config?.specialTokens ?? [:])
            }
            return template
        }
        return try Self.load(String(decoding: data, as: UTF8.self), from: path, specialTokens: [:])
    }

    private static func load(_ source: String, from path: String, specialTokens: [String: String]) throws -> ChatTemplate {
        do {
            return try ChatTemplate(source, specialTokens: specialTokens)
        } catch let error as TemplateError {
            throw TemplateError("the chat template in \(path) cannot be used: \(error.message)")
        }
    }
}

/// The parts of tokenizer_config.json a chat template needs.
private struct TokenizerConfig: Decodable {
    var chatTemplate: String?
    var specialTokens: [String: String] = [:]

    private struct Key: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }
    private struct NamedTemplate: Decodable { let name: String; let template: String }
    private struct AddedToken: Decodable { let content: String }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let templateKey = Key(stringValue: "chat_template")
        if container.contains(templateKey) {
            if let text = try? container.decode(String.self, forKey: templateKey) {
                chatTemplate = text
            } else if let named = try? container.decode([NamedTemplate].self, forKey: templateKey) {
                chatTemplate = named.first { $0.name == "default" }?.template ?? named.first?.template
            }
        }
        for name in ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"] {
            let key = Key(stringValue: name)
            if let text = try? container.decode(String.self, forKey: key) {
                specialTokens[name] = text
            } else if let token = try? container.decode(AddedToken.self, forKey: key) {
                specialTokens[name] = token.content
            }
        }
    }
}
