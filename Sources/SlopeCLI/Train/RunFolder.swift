import ArgumentParser
import FoundationEssentials

/// Creating the folders a command writes into, with failures said plainly (what, where, why) instead of a
/// Foundation error dump.
enum RunFolder {
    static func create(_ path: String) throws {
        if FileManager.default.fileExists(atPath: path) {
            guard isFolder(path) else { throw ValidationError("cannot use \(path) as a folder: a file with that name exists") }
            guard FileManager.default.isWritableFile(atPath: path) else {
                throw ValidationError("cannot write into \(path): permission denied; choose another folder")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("cannot create the folder \(path): \(reason(creating: path)); choose another path")
        }
    }

    static func isFolder(_ path: String) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeDirectory
    }

    /// Why `path` could not be created, from its nearest existing ancestor: a file, or a folder not writable.
    static func reason(creating path: String) -> String {
        var ancestor = URL(fileURLWithPath: path).standardizedFileURL
        while !FileManager.default.fileExists(atPath: ancestor.path), ancestor.path != "/" { ancestor.deleteLastPathComponent() }
        if !isFolder(ancestor.path) { return "\(ancestor.path) is a file" }
        if !FileManager.default.isWritableFile(atPath: ancestor.path) { return "\(ancestor.path) is not writable" }
        return "the file system refused"
    }
}
