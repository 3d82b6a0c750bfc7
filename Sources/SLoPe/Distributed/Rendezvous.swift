#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The meeting point of a data-parallel job's processes (what torch's TCPStore is to torchrun): rank 0 listens on
/// MASTER_ADDR:MASTER_PORT, every other rank connects and says who it is, and once all have come rank 0 sends each
/// the same bytes (the NCCL unique id). Nothing waits forever: a rank that never comes, or a master that never
/// answers, ends the wait with an error that names it.
///
/// Wire format (all integers little-endian): a rank sends `SLOPERV1`, its rank and the world size (UInt32 each);
/// the master answers with a status byte (0: accepted, else refused, followed by a UInt32 length and the reason),
/// and after everyone has joined a UInt32 length and the payload.
public enum Rendezvous {
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case socket(call: String, errno: Int32, address: String)
        case timedOut(waitingFor: String, seconds: Double)
        case refused(reason: String)
        case protocolError(String)

        public var description: String {
            switch self {
            case let .socket(call, code, address):
                return "rendezvous on \(address): \(call) failed: \(String(cString: strerror(code))) (errno \(code))"
            case let .timedOut(what, seconds):
                return "rendezvous: waited \(Int(seconds)) s for \(what); check that every process was started with the same "
                    + "MASTER_ADDR, MASTER_PORT and WORLD_SIZE and that rank 0 is reachable"
            case .refused(let reason): return "rendezvous: the master refused this rank: \(reason)"
            case .protocolError(let what): return "rendezvous: \(what) (is something else listening on MASTER_PORT?)"
            }
        }
    }

    static let magic = Array("SLOPERV1".utf8)

    /// Rank 0: waits for the other `worldSize − 1` ranks on `port`, then sends them `payload`.
    public static func serve(payload: [UInt8], worldSize: Int, port: UInt16, timeout seconds: Double) throws {
        let connections = try accept(worldSize: worldSize, port: port, timeout: seconds)
        defer { for connection in connections { close(connection) } }
        for connection in connections { try send(connection, lengthPrefixed(payload)) }
    }

    /// Ranks 1…: connects to the master (retrying while it is not up yet) and returns its payload.
    public static func join(rank: Int, worldSize: Int, masterAddress: String, port: UInt16, timeout seconds: Double) throws -> [UInt8] {
        let connection = try connect(rank: rank, worldSize: worldSize, masterAddress: masterAddress, port: port, timeout: seconds)
        defer { close(connection) }
        return try receiveLengthPrefixed(connection, waitingFor: "the other ranks to join (rank 0 answers when all have)", seconds: seconds)
    }

    /// Rank 0: waits for the other `worldSize − 1` ranks on `port` and returns their open connections in rank
    /// order (ranks 1…), each already told it was accepted; the caller closes them.
    public static func accept(worldSize: Int, port: UInt16, timeout seconds: Double) throws -> [Int32] {
        guard worldSize > 1 else { return [] }  // alone: nobody to wait for
        let address = "port \(port)"
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw Failure.socket(call: "socket", errno: errno, address: address) }
        defer { close(listener) }
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var any = sockaddr_in()
        any.sin_family = sa_family_t(AF_INET)
        any.sin_port = port.bigEndian
        any.sin_addr.s_addr = INADDR_ANY
        let bound = withUnsafePointer(to: &any) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw Failure.socket(call: "bind", errno: errno, address: address) }
        guard listen(listener, Int32(min(worldSize, 4096))) == 0 else { throw Failure.socket(call: "listen", errno: errno, address: address) }

        let deadline = Deadline(seconds: seconds)
        var joined: [Int: Int32] = [:]
        var handedOver = false
        defer { if !handedOver { for connection in joined.values { close(connection) } } }
        while joined.count < worldSize - 1 {
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, deadline.remainingMilliseconds)
            if ready == 0 || deadline.passed {
                let missing = (1..<worldSize).filter { joined[$0] == nil }
                throw Failure.timedOut(waitingFor: "rank\(missing.count == 1 ? "" : "s") \(describe(missing)) to join", seconds: seconds)
            }
            guard ready > 0 else {
                if errno == EINTR { continue }
                throw Failure.socket(call: "poll", errno: errno, address: address)
            }
            let connection = Glibc.accept(listener, nil, nil)
            guard connection >= 0 else { continue }
            setTimeout(connection, seconds: max(1, deadline.remainingSeconds))
            // A stranger (a port scanner, another program) is turned away without failing the job.
            guard let hello = try? receive(connection, count: magic.count + 8), Array(hello.prefix(magic.count)) == magic else {
                close(connection)
                continue
            }
            let rank = Int(readUInt32(hello, at: magic.count)), world = Int(readUInt32(hello, at: magic.count + 4))
            var refusal: String?
            if world != worldSize { refusal = "it was started with WORLD_SIZE=\(world), rank 0 with \(worldSize)" }
            else if !(1..<worldSize).contains(rank) { refusal = "rank \(rank) is not in 1…\(worldSize - 1)" }
            else if joined[rank] != nil { refusal = "rank \(rank) has joined already (two processes with one RANK)" }
            if let refusal {
                try? send(connection, [1] + lengthPrefixed(Array(refusal.utf8)))
                close(connection)
                throw Failure.refused(reason: "rank 0 turned away a process: \(refusal)")
            }
            try send(connection, [0])
            joined[rank] = connection
        }
        handedOver = true
        return (1..<worldSize).map { joined[$0]! }
    }

    /// Ranks 1…: connects to the master (retrying while it is not up yet), says who it is and returns the open
    /// connection once accepted; the caller closes it.
    public static func connect(rank: Int, worldSize: Int, masterAddress: String, port: UInt16, timeout seconds: Double) throws -> Int32 {
        let address = "\(masterAddress):\(port)"
        let deadline = Deadline(seconds: seconds)
        let connection = try connect(to: masterAddress, port: port, deadline: deadline, address: address)
        var handedOver = false
        defer { if !handedOver { close(connection) } }
        setTimeout(connection, seconds: max(1, deadline.remainingSeconds))
        var hello = magic
        appendUInt32(&hello, UInt32(rank))
        appendUInt32(&hello, UInt32(worldSize))
        try send(connection, hello)
        let status = try receive(connection, count: 1, waitingFor: "rank 0 to accept rank \(rank)", seconds: seconds)
        if status[0] != 0 {
            let reason = (try? receiveLengthPrefixed(connection, waitingFor: "the reason", seconds: seconds)).map { String(decoding: $0, as: UTF8.self) }
            throw Failure.refused(reason: reason ?? "no reason given")
        }
        handedOver = true
        return connection
    }

    // MARK: Sockets

    static func connect(to host: String, port: UInt16, deadline: Deadline, address: String) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var lastError: Int32 = 0
        while !deadline.passed {
            var found: UnsafeMutablePointer<addrinfo>?
            let resolved = getaddrinfo(host, "\(port)", &hints, &found)
            if resolved == 0, let info = found {
                defer { freeaddrinfo(found) }
                let connection = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
                guard connection >= 0 else { throw Failure.socket(call: "socket", errno: errno, address: address) }
                if Glibc.connect(connection, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return connection }
                lastError = errno
                close(connection)
            } else {
                lastError = EHOSTUNREACH
            }
            usleep(100_000)  // the master may not be listening yet
        }
        throw Failure.timedOut(waitingFor: "rank 0 at \(address) (last error: \(String(cString: strerror(lastError))))", seconds: deadline.seconds)
    }

    static func setTimeout(_ connection: Int32, seconds: Double) {
        var limit = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1e6))
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    static func send(_ connection: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(connection, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw Failure.socket(call: "send", errno: errno, address: "a peer") }
            sent += count
        }
    }

    static func receive(_ connection: Int32, count: Int, waitingFor what: String = "a peer", seconds: Double = 0) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            let got = bytes.withUnsafeMutableBytes { recv(connection, $0.baseAddress! + received, count - received, 0) }
            if got < 0, errno == EINTR { continue }
            if got < 0, errno == EAGAIN || errno == EWOULDBLOCK { throw Failure.timedOut(waitingFor: what, seconds: seconds) }
            guard got > 0 else { throw Failure.protocolError("the connection closed while waiting for \(what)") }
            received += got
        }
        return bytes
    }

    static func receiveLengthPrefixed(_ connection: Int32, waitingFor what: String, seconds: Double) throws -> [UInt8] {
        let length = Int(readUInt32(try receive(connection, count: 4, waitingFor: what, seconds: seconds), at: 0))
        guard length <= 1 << 20 else { throw Failure.protocolError("a message of \(length) bytes") }
        return try receive(connection, count: length, waitingFor: what, seconds: seconds)
    }

    static func lengthPrefixed(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        appendUInt32(&out, UInt32(bytes.count))
        return out + bytes
    }

    static func appendUInt32(_ bytes: inout [UInt8], _ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    static func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << UInt32(8 * $1) }
    }

    /// "1, 2 and 5" (at most eight named).
    static func describe(_ ranks: [Int]) -> String {
        let shown = ranks.prefix(8).map(String.init)
        let more = ranks.count > 8 ? " and \(ranks.count - 8) more" : ""
        return shown.count <= 1 || !more.isEmpty ? shown.joined(separator: ", ") + more
            : shown.dropLast().joined(separator: ", ") + " and " + shown.last!
    }

    struct Deadline {
        let seconds: Double
        let end: Double

        init(seconds: Double) {
            self.seconds = seconds
            end = Self.now() + seconds
        }

        static func now() -> Double {
            var time = timespec()
            clock_gettime(CLOCK_MONOTONIC, &time)
            return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
        }

        var remainingSeconds: Double { max(0, end - Self.now()) }
        var remainingMilliseconds: Int32 { Int32(min(remainingSeconds * 1000, Double(Int32.max))) }
        var passed: Bool { Self.now() >= end }
    }
}
