import OrderedCollections

/// Variables visible at one point of a template: a loop body and a macro call see their own, and their parent's.
final class TemplateScope: @unchecked Sendable {
    private var variables: [String: TemplateValue] = [:]
    let parent: TemplateScope?

    init(parent: TemplateScope?, _ variables: [String: TemplateValue] = [:]) {
        self.parent = parent
        self.variables = variables
    }

    func lookup(_ name: String) -> TemplateValue? { variables[name] ?? parent?.lookup(name) }
    func set(_ name: String, _ value: TemplateValue) { variables[name] = value }
    func clear() { variables = [:] }
}

/// Renders parsed templates (Jinja's semantics with transformers' sandbox: no mutation of lists or dictionaries).
struct TemplateRenderer: @unchecked Sendable {  // (renders on the caller's thread; macros capture it)
    private enum Flow { case normal, breakLoop, continueLoop }

    /// What one rendering may spend: a template that loops without end, recurses through macros or prints without
    /// bound fails with a clear error instead of hanging the server or exhausting its memory.
    final class Budget {
        static let maximumSteps = 1_000_000, maximumMacroDepth = 32, maximumOutput = 16 << 20
        var steps = 0, macroDepth = 0
        /// What can hold a reference cycle once rendering ends: a scope holding a macro that captured it, a namespace
        /// set as its own attribute. Emptied at the end (a macro or namespace kept past one rendering has no use).
        var scopesWithMacros: [TemplateScope] = []
        var namespaces: [TemplateNamespace] = []

        func release() {
            for scope in scopesWithMacros { scope.clear() }
            for namespace in namespaces { namespace.attributes = [:] }
            (scopesWithMacros, namespaces) = ([], [])
        }

        func step() throws {
            steps += 1
            if steps > Self.maximumSteps { throw TemplateError("the template takes more than \(Self.maximumSteps) steps") }
        }
    }

    let root: TemplateScope
    let budget = Budget()

    func render(_ nodes: [TemplateNode]) throws -> String {
        defer { budget.release() }
        var out = ""
        _ = try render(nodes, scope: root, into: &out)
        return out
    }

    private func render(_ nodes: [TemplateNode], scope: TemplateScope, into out: inout String) throws -> Flow {
        for node in nodes {
            try budget.step()
            if out.utf8.count > Budget.maximumOutput { throw TemplateError("the template writes more than \(Budget.maximumOutput) bytes") }
            switch node {
            case .text(let text):
                out += text
            case .output(let expression, let line):
                out += try located(line) { try evaluate(expression, scope).printed }
            case .conditional(let branches, let otherwise, let line):
                var chosen = otherwise
                for branch in branches {
                    if try located(line, { try evaluate(branch.condition, scope).isTrue }) {
                        chosen = branch.body
                        break
                    }
                }
                let flow = try render(chosen, scope: scope, into: &out)
                if flow != .normal { return flow }
            case .loop(let targets, let iterable, let filter, let body, let otherwise, let line):
                let flow = try loop(targets, iterable, filter, body, otherwise, line, scope, &out)
                if flow != .normal { return flow }
            case .assignment(let targets, let attribute, let value, let line):
                try located(line) { try assign(targets, attribute, evaluate(value, scope), scope) }
            case .capture(let name, let body):
                var captured = ""
                _ = try render(body, scope: scope, into: &captured)
                scope.set(name, .string(captured))
            case .macro(let name, let parameters, let body):
                scope.set(name, macro(name, parameters, body, definedIn: scope))
                budget.scopesWithMacros.append(scope)
            case .breakLoop: return .breakLoop
            case .continueLoop: return .continueLoop
            }
        }
        return .normal
    }

    /// Runs `body`, naming the template line in an error that does not name one yet.
    private func located<T>(_ line: Int, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as TemplateError where !error.raisedByTemplate && !error.message.hasPrefix("line ") {
            throw TemplateError("line \(line): \(error.message)")
        }
    }

    private func loop(
        _ targets: [String], _ iterable: TemplateExpression, _ filter: TemplateExpression?, _ body: [TemplateNode],
        _ otherwise: [TemplateNode], _ line: Int, _ scope: TemplateScope, _ out: inout String
    ) throws -> Flow {
        let sequence = try located(line) { try TemplateBuiltins.items(of: evaluate(iterable, scope), for: "a for loop") }
        var items: [TemplateValue] = []
        for item in sequence {
            try budget.step()
            if let filter {
                let probe = TemplateScope(parent: scope)
                try located(line) { try bind(targets, item, probe) }
                guard try located(line, { try evaluate(filter, probe).isTrue }) else { continue }
            }
            items.append(item)
        }
        if items.isEmpty { return try render(otherwise, scope: TemplateScope(parent: scope), into: &out) }
        for (index, item) in items.enumerated() {
            try budget.step()  // (an iteration is a step even when its body is empty)
            let inner = TemplateScope(parent: scope)
            try located(line) { try bind(targets, item, inner) }
            let count = items.count
            var info: OrderedDictionary<String, TemplateValue> = [
                "index": .integer(index + 1), "index0": .integer(index), "revindex": .integer(count - index),
                "revindex0": .integer(count - index - 1), "first": .bool(index == 0), "last": .bool(index == count - 1),
                "length": .integer(count), "depth": .integer(1), "depth0": .integer(0),
                "previtem": index > 0 ? items[index - 1] : .undefined(name: "loop.previtem"),
                "nextitem": index + 1 < count ? items[index + 1] : .undefined(name: "loop.nextitem"),
            ]
            info["cycle"] = .callable(TemplateCallable(name: "loop.cycle") { arguments, _ in
                arguments.isEmpty ? .undefined(name: "loop.cycle()") : arguments[index % arguments.count]
            })
            inner.set("loop", .dictionary(info))
            if try render(body, scope: inner, into: &out) == .breakLoop { break }
        }
        return .normal
    }

    private func bind(_ targets: [String], _ value: TemplateValue, _ scope: TemplateScope) throws {
        guard targets.count > 1 else { return scope.set(targets[0], value) }
        let parts = try TemplateBuiltins.items(of: value, for: "unpacking")
        guard parts.count == targets.count else {
            throw TemplateError("cannot unpack \(parts.count) values into \(targets.count) names (\(targets.joined(separator: ", ")))")
        }
        for (name, part) in zip(targets, parts) { scope.set(name, part) }
    }

    private func assign(_ targets: [String], _ attribute: String?, _ value: TemplateValue, _ scope: TemplateScope) throws {
        guard let attribute else { return try bind(targets, value, scope) }
        guard case .namespace(let namespace)? = scope.lookup(targets[0]) else {
            throw TemplateError("cannot set '\(targets[0]).\(attribute)': only a namespace() takes attributes")
        }
        namespace.attributes[attribute] = value
    }

    private func macro(
        _ name: String, _ parameters: [(name: String, defaultValue: TemplateExpression?)], _ body: [TemplateNode], definedIn scope: TemplateScope
    ) -> TemplateValue {
        let renderer = self
        return .callable(TemplateCallable(name: name) { positional, keywords in
            guard positional.count <= parameters.count else {
                throw TemplateError("macro '\(name)' takes \(parameters.count) arguments, not \(positional.count)")
            }
            renderer.budget.macroDepth += 1
            defer { renderer.budget.macroDepth -= 1 }
            guard renderer.budget.macroDepth <= Budget.maximumMacroDepth else {
                throw TemplateError("macro '\(name)' calls nest deeper than \(Budget.maximumMacroDepth)")
            }
            let call = TemplateScope(parent: scope)
            for (index, parameter) in parameters.enumerated() {
                if index < positional.count {
                    call.set(parameter.name, positional[index])
                } else if let keyword = keywords.first(where: { $0.0 == parameter.name }) {
                    call.set(parameter.name, keyword.1)
                } else if let defaultValue = parameter.defaultValue {
                    call.set(parameter.name, try renderer.evaluate(defaultValue, scope))
                } else {
                    call.set(parameter.name, .undefined(name: parameter.name))
                }
            }
            var out = ""
            _ = try renderer.render(body, scope: call, into: &out)
            return .string(out)
        })
    }

    // MARK: Expressions

    func evaluate(_ expression: TemplateExpression, _ scope: TemplateScope) throws -> TemplateValue {
        try budget.step()
        switch expression {
        case .literal(let value): return value
        case .name(let name): return scope.lookup(name) ?? TemplateBuiltins.global(name) ?? .undefined(name: name)
        case .list(let items):
            let values = try items.map { try evaluate($0, scope) }
            return try .container { .list(values) }
        case .dictionary(let pairs):
            var dictionary = OrderedDictionary<String, TemplateValue>()
            for pair in pairs {
                guard case .string(let key) = try evaluate(pair.key, scope) else { throw TemplateError("dictionary keys must be strings here") }
                dictionary[key] = try evaluate(pair.value, scope)
            }
            return try .container { .dictionary(dictionary) }
        case .attribute(let base, let name):
            return try TemplateBuiltins.attribute(name, of: evaluate(base, scope))
        case .item(let base, let key):
            return try TemplateBuiltins.item(evaluate(key, scope), of: evaluate(base, scope))
        case .slice(let base, let start, let stop, let step):
            func bound(_ expression: TemplateExpression?) throws -> Int? {
                guard let expression else { return nil }
                switch try evaluate(expression, scope) {
                case .integer(let value): return value
                case .none: return nil
                case let other: throw TemplateError("slice bounds must be integers, not a \(other.kind)")
                }
            }
            return try TemplateBuiltins.slice(evaluate(base, scope), start: bound(start), stop: bound(stop), step: bound(step))
        case .call(let callee, let arguments):
            let function = try evaluate(callee, scope)
            guard case .callable(let callable) = function else { throw TemplateError("\(function.kind) is not callable") }
            let (positional, keywords) = try evaluate(arguments, scope)
            let result = try callable.call(positional, keywords)
            if case .namespace(let namespace) = result { budget.namespaces.append(namespace) }
            return result
        case .filter(let base, let name, let arguments):
            let (positional, keywords) = try evaluate(arguments, scope)
            return try TemplateBuiltins.filter(name, evaluate(base, scope), positional, keywords)
        case .test(let base, let name, let arguments, let negated):
            let (positional, _) = try evaluate(arguments, scope)
            return .bool(try TemplateBuiltins.test(name, evaluate(base, scope), positional) != negated)
        case .unary(let symbol, let operand):
            let value = try evaluate(operand, scope)
            switch symbol {
            case "not": return .bool(!value.isTrue)
            case "-":
                switch value {
                case .integer(let x): return .integer(-x)
                case .number(let x): return .number(-x)
                default: throw TemplateError("cannot negate a \(value.kind)")
                }
            default: return value
            }
        case .binary("and", let left, let right):
            let a = try evaluate(left, scope)
            return a.isTrue ? try evaluate(right, scope) : a
        case .binary("or", let left, let right):
            let a = try evaluate(left, scope)
            return a.isTrue ? a : try evaluate(right, scope)
        case .binary(let symbol, let left, let right):
            return try TemplateBuiltins.binary(symbol, evaluate(left, scope), evaluate(right, scope))
        case .conditional(let then, let condition, let otherwise):
            if try evaluate(condition, scope).isTrue { return try evaluate(then, scope) }
            return try otherwise.map { try evaluate($0, scope) } ?? .undefined(name: "the else of a conditional")
        }
    }

    private func evaluate(_ arguments: TemplateArguments, _ scope: TemplateScope) throws -> ([TemplateValue], [(String, TemplateValue)]) {
        (try arguments.positional.map { try evaluate($0, scope) }, try arguments.keywords.map { ($0.name, try evaluate($0.value, scope)) })
    }
}
