import Foundation
@testable import SlopeData
import XCTest

final class ChatTemplateTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/chat-templates")


    /// Every template in the fixtures (ChatML, Llama 2 and 3, Mistral, Zephyr, Gemma and one exercising the rest of
    /// the subset) with every conversation, with and without the generation prompt, gives exactly what Jinja2 gives
    /// with transformers' settings (Tests/Fixtures/chat-templates/make_expected.py); where Jinja2 fails, so does this
    /// renderer, and a template's own `raise_exception` carries its message.
    func testTemplatesRenderAsJinjaDoes() throws {
        func json(_ name: String) throws -> TemplateValue { try TemplateValue(json: Data(contentsOf: Self.folder.appendingPathComponent(name))) }
        guard case .dictionary(let expected) = try json("expected.json"), case .list(let cases)? = expected["cases"], let tools = expected["tools"],
              case .dictionary(let conversations) = try json("conversations.json") else { return XCTFail("unexpected fixture layout") }
        XCTAssertEqual(cases.count, 84)
        var templates: [String: ChatTemplate] = [:]
        for case .dictionary(let fields) in cases {
            func text(_ key: String) -> String? { if case .string(let value)? = fields[key] { value } else { nil } }
            let item = (template: text("template")!, conversation: text("conversation")!, add_generation_prompt: fields["add_generation_prompt"]!.isTrue,
                        output: text("output"), error: text("error"))
            let template = try templates[item.template] ?? ChatTemplate(
                String(contentsOf: Self.folder.appendingPathComponent(item.template), encoding: .utf8),
                specialTokens: ["bos_token": "<s>", "eos_token": "</s>"])
            templates[item.template] = template
            let label = "\(item.template) × \(item.conversation), generation prompt \(item.add_generation_prompt)"
            guard case .list(let messages)? = conversations[item.conversation] else { return XCTFail("\(label): no conversation") }
            do {
                let output = try template.render(messages: messages, addGenerationPrompt: item.add_generation_prompt, variables: ["tools": tools])
                XCTAssertEqual(output, item.output, label)
            } catch let error as TemplateError {
                let jinja = try XCTUnwrap(item.error, "\(label): Jinja renders it, slope failed: \(error)")
                if jinja.hasPrefix("TemplateError: ") {
                    XCTAssertTrue(error.raisedByTemplate, label)
                    XCTAssertEqual(error.message, String(jinja.dropFirst("TemplateError: ".count)), label)
                }
            }
        }
    }

    /// What the lexer does with whitespace, against Jinja2's output for the same sources (trim_blocks, lstrip_blocks).
    func testWhitespaceControlMatchesJinja() throws {
        let cases: [(String, String)] = [
            ("a\n  {# c #}\nb", "a\nb"),
            ("a\n  {% if true %}\nx\n  {% endif %}\nb", "a\nx\nb"),
            ("a  {% if true %}x{% endif %}  b\n", "a  x  b"),
            ("  {{ 1 }}\n", "  1"),
            ("a\n  {%+ if true %}\nx{% endif %}", "a\n  x"),
            ("a {%- if true -%} \n x \n {%- endif %}\n\nb", "ax\nb"),
            ("{% for i in [1,2] %}\n{{ i }}\n{% endfor %}\n", "1\n2\n"),
            ("x\n\t {% if 1 %}y{% endif +%}\nz", "x\ny\nz"),
        ]
        for (source, output) in cases {
            XCTAssertEqual(try ChatTemplate(source).render(messages: [], addGenerationPrompt: false), output, source.debugDescription)
        }
    }

    /// Python's printing and arithmetic, as Jinja2 gives them.
    func testValuesPrintAndComputeAsPython() throws {
        let source = "{{ 'a' ~ 1 ~ none ~ true }}|{{ [1,'a',none,1.0] }}|{{ {'a':1} }}|{{ 1/2 }}|{{ 4/2 }}|{{ 7//2 }}|{{ -7 % 3 }}|{{ 2**10 }}|"
            + "{{ 'abc'[::-1] }}{{ [1,2,3][1:] }}{{ 'x' * 3 }}|{{ 'a' if false }}|{{ 1e-7 }}|{{ 1e20 }}|{{ 3.14 }}|{{ foo }}|{{ foo is defined }}"
        XCTAssertEqual(
            try ChatTemplate(source).render(messages: [], addGenerationPrompt: false),
            "a1NoneTrue|[1, 'a', None, 1.0]|{'a': 1}|0.5|2.0|3|2|1024|cba[2, 3]xxx||1e-07|1e+20|3.14||False")
    }

    /// Bad templates fail to load with the line and what is wrong; bad uses fail to render with the name involved.
    func testErrorsSayWhatAndWhere() throws {
        func loadError(_ source: String) -> String {
            do { _ = try ChatTemplate(source); return "loaded" } catch { return "\(error)" }
        }
        func renderError(_ source: String) -> String {
            do { _ = try ChatTemplate(source).render(messages: [], addGenerationPrompt: false); return "rendered" } catch { return "\(error)" }
        }
        XCTAssertTrue(loadError("{% if x %}never closed").contains("{% endif %}"), loadError("{% if x %}never closed"))
        XCTAssertTrue(loadError("line one\n{{ 'open string }}").contains("line 2"), loadError("line one\n{{ 'open string }}"))
        XCTAssertTrue(loadError("{% include 'other' %}").contains("{% include %} is not supported"))
        XCTAssertTrue(loadError("{{ 1 + }}").contains("expected a value"))
        XCTAssertTrue(loadError("{% endfor %}").contains("unexpected {% endfor %}"))
        XCTAssertTrue(renderError("\n\n{{ missing.attribute }}").hasPrefix("line 3: 'missing' is undefined"), renderError("\n\n{{ missing.attribute }}"))
        XCTAssertTrue(renderError("{{ 1 + 'a' }}").contains("cannot apply + to a integer and a string"))
        XCTAssertTrue(renderError("{{ x | frobnicate }}").contains("the filter 'frobnicate' is not supported"))
        XCTAssertTrue(renderError("{{ 1 // 0 }}").contains("division by zero"))
        XCTAssertEqual(renderError("{{ raise_exception('no system role') }}"), "no system role")
        XCTAssertTrue(renderError("{% for i in range(1000000) %}{% endfor %}").contains("more than 100000"))
    }

    /// Templates and request JSON cannot hang or crash the server: endless loops, runaway recursion through macros,
    /// values nested without bound and huge outputs end in an error; JSON nested too deeply or with numbers out of
    /// range is refused; what is read writes back (tojson) as JSON that reads as the same value.
    func testLimitsHoldAgainstRunawayTemplatesAndInputs() throws {
        func renderError(_ source: String) -> String {
            do { _ = try ChatTemplate(source).render(messages: [], addGenerationPrompt: false); return "rendered" } catch { return "\(error)" }
        }
        XCTAssertTrue(renderError("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}").contains("steps"))
        XCTAssertTrue(renderError("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}").contains("nest deeper than 32"))
        XCTAssertTrue(renderError("{% set ns = namespace(x=[]) %}{% for i in range(100) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}")
            .contains("nested deeper than 64"))
        XCTAssertTrue(renderError("{{ 'x' * 100000000 }}").contains("over 16 MB"))
        XCTAssertTrue(renderError("{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}").contains("more than"))
        XCTAssertTrue(loadErrorOf(String(repeating: "(", count: 200) + "1" + String(repeating: ")", count: 200)).contains("deeper than 64"))
        XCTAssertTrue(loadErrorOf(String(repeating: "{% if 1 %}", count: 100)).contains("deeper than 64"))

        XCTAssertThrowsError(try TemplateValue(json: Array(("{\"m\": " + String(repeating: "[", count: 70) + String(repeating: "]", count: 70) + "}").utf8)))
        XCTAssertThrowsError(try TemplateValue(json: Array("[1e400]".utf8)))
        XCTAssertThrowsError(try TemplateValue(json: Array("{\"a\": 1} x".utf8)))
        XCTAssertThrowsError(try TemplateValue(json: Array("\"\\ud800\"".utf8)), "an unpaired surrogate")
        let text = #"{"z": [1, -0.0, 2.5e-7, 12345678901234567890, true, null, "é\n\u00e9\ud83d\ude00\"\\"], "a": {}}"#
        let value = try TemplateValue(json: Array(text.utf8))
        guard case .dictionary(let fields) = value else { return XCTFail("an object") }
        XCTAssertEqual(Array(fields.keys), ["z", "a"], "keys in the text's order")
        let written = try value.json()
        XCTAssertTrue(TemplateValue.equal(try TemplateValue(json: Array(written.utf8)), value), written)
        XCTAssertEqual(try value.json(), #"{"z": [1, -0.0, 2.5e-07, 1.2345678901234567e+19, true, null, "é\né😀\"\\"], "a": {}}"#)
    }

    private func loadErrorOf(_ expression: String) -> String {
        do { _ = try ChatTemplate(expression.hasPrefix("{%") ? expression : "{{ " + expression + " }}"); return "loaded" } catch { return "\(error)" }
    }

    /// A model folder's template: chat_template.jinja first, else tokenizer_config.json's (a string or named
    /// templates), with the special tokens as strings or added-token objects; none when there is none.
    func testTemplatesAreFoundInAModelFolder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-chat-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        XCTAssertNil(try ChatTemplate.find(inFolder: folder.path))
        let config = #"{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}"}]}"#
        try Data(config.utf8).write(to: folder.appendingPathComponent("tokenizer_config.json"))
        let messages: [TemplateValue] = [.dictionary(["role": .string("user"), "content": .string("hi")])]
        let named = try XCTUnwrap(try ChatTemplate.find(inFolder: folder.path))
        XCTAssertEqual(try named.render(messages: messages, addGenerationPrompt: true), "<s>hi</s>")
        try Data("[{{ messages[0].content }}]{{ eos_token }}".utf8).write(to: folder.appendingPathComponent("chat_template.jinja"))
        let file = try XCTUnwrap(try ChatTemplate.find(inFolder: folder.path))
        XCTAssertEqual(try file.render(messages: messages, addGenerationPrompt: true), "[hi]</s>")
        XCTAssertEqual(try ChatTemplate.load(file: folder.appendingPathComponent("chat_template.jinja").path).render(messages: messages, addGenerationPrompt: false), "[hi]")
        try Data(#"{"chat_template": "{% if %}"}"#.utf8).write(to: folder.appendingPathComponent("other.json"))
        XCTAssertThrowsError(try ChatTemplate.load(file: folder.appendingPathComponent("other.json").path)) { error in
            XCTAssertTrue("\(error)".contains("other.json cannot be used"), "\(error)")
        }
    }
}
