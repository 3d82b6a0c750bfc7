import ArgumentParser
import FoundationEssentials
import SLoPe
import SlopeData

/// Where `slope serve` and `slope generate --chat` find a model's chat template.
enum ChatTemplateLookup {
    /// The chat template given, else the one beside the tokenizer files (a Hugging Face folder's, or those a checkpoint
    /// was trained with), and where it came from; a template that cannot be used is an error at start, not at the
    /// first request.
    static func find(given path: String?, tokenizer: HuggingFaceTokenizerFiles.Source?) throws -> (ChatTemplate?, String?) {
        do {
            if let path { return (try ChatTemplate.load(file: path), path) }
            let file: String?
            switch tokenizer {
            case .tokenizerJSON(let path)?: file = path
            case .vocabularyAndMerges(let vocabulary, _)?: file = vocabulary
            case .bytes?, nil: file = nil
            }
            guard let file else { return (nil, nil) }
            let folder = file.contains("/") ? String(file[..<file.lastIndex(of: "/")!]) : "."
            guard let template = try ChatTemplate.find(inFolder: folder) else { return (nil, nil) }
            let source = FileManager.default.fileExists(atPath: folder + "/chat_template.jinja") ? "chat_template.jinja" : "tokenizer_config.json"
            return (template, folder + "/" + source)
        } catch let error as TemplateError {
            throw ValidationError(error.message)
        }
    }

}
