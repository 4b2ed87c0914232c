import Foundation
internal import Libvirt
import Logging

/// A libvirt host: the machine VMs run on, reached through one libvirt connection.
///
/// ```swift
/// let host = try await Host.connect("qemu:///system")
/// let vm = try await host.open("web")
/// print(try await vm.details().state)
/// try await host.close()
/// ```
public final class Host: Sendable {
    /// The URI as given.
    public let uri: String
    /// The host's name, as libvirt reports it.
    public let name: String
    /// The libvirt driver: `qemu`, `test` …
    public let driver: String
    /// Whether the connection reaches another machine (a URI with a host part).
    public let isRemote: Bool
    let connection: Connection
    let logger: Logger
    /// The host's files: this machine's, or another's through libvirt. Chosen once, here.
    let storage: any HostStorage

    private init(uri: String, name: String, driver: String, isRemote: Bool, connection: Connection, logger: Logger) {
        self.uri = uri
        self.name = name
        self.driver = driver
        self.isRemote = isRemote
        self.connection = connection
        self.logger = logger
        storage = isRemote ? RemoteStorage(connection: connection) : LocalStorage(connection: connection)
    }

    /// Connects to a libvirt host.
    /// - Parameters:
    ///   - uri: `qemu:///system` (default), `test:///default`, `qemu+ssh://user@host/system`,
    ///     `qemu+tcp://host/system`, `qemu+tls://host/system` … Remote connections get keepalive,
    ///     so a dead peer is noticed in about 20 s.
    ///   - readOnly: a read-only connection (`virConnectOpenReadOnly`): it can look, not change.
    ///   - credentials: a user name and password for hosts that ask (SASL, a qemu+ssh
    ///     password): answered to libvirt's authentication callback, never logged.
    ///   - logger: where VMDriver logs what it does on this host.
    /// - Throws: code 4 for a URI libvirt cannot parse, code 2 when the host does not answer.
    public static func connect(
        _ uri: String = "qemu:///system", readOnly: Bool = false, credentials: Credentials? = nil,
        logger: Logger = Logger(label: "vmdriver")
    ) async throws(VMDriverError) -> Host {
        let parsed = try HostURI(uri)
        let opened: (Connection, String, String)
        do {
            opened = try await BlockingPool.control.run { () throws -> (Connection, String, String) in
                let connection = try Connection(
                    uri: uri, readOnly: readOnly, credentials: credentials.map { ($0.username, $0.password) })
                if parsed.isRemote { try connection.setKeepAlive(interval: 5, count: 3) }
                let name = (try? connection.hostname()) ?? parsed.hostName ?? "localhost"
                let driver = (try? connection.hypervisorType().lowercased()) ?? parsed.driver
                return (connection, name, driver)
            }
        } catch let error as LibvirtError {
            throw VMDriverError(
                ReturnCode(error.code) == .failed ? .failed : ReturnCode(error.code),
                "cannot connect to \(uri): \(error.message)"
                    + (parsed.isRemote ? "" : "; is libvirtd running? (scripts/setup-host.sh starts it)"),
                cause: error)
        } catch {
            throw VMDriverError(.failed, "cannot connect to \(uri): \(error)", cause: error)
        }
        logger.debug("connected", metadata: ["uri": "\(uri)", "host": "\(opened.1)"])
        return Host(
            uri: uri, name: opened.1, driver: opened.2, isRemote: parsed.isRemote, connection: opened.0, logger: logger)
    }

    /// What `connect` answers when the host asks who is connecting.
    public struct Credentials: Sendable {
        public var username: String?
        public var password: String?
        public init(username: String?, password: String?) {
            self.username = username
            self.password = password
        }
    }

    /// Closes the connection; VMs and jobs from this host stop working. Calls `virConnectClose`
    /// (a remote call on remote hosts, hence async).
    public func close() async throws(VMDriverError) {
        try await blocking("closing the connection to \(uri)") { connection in try connection.close() }
    }

    /// "host 'NAME'" for messages.
    var label: String { "host '\(name)'" }

    /// Runs a blocking libvirt call on the dedicated pool, turning its failure into a
    /// `VMDriverError` whose message starts with `context`.
    /// - Parameters:
    ///   - evenIfCancelled: run it even when the calling task was cancelled (clean-up).
    ///   - lane: `.long` for a call that may block for minutes (a migration, a copy, a block
    ///     job), so the quick calls that watch and control it never wait behind it.
    func blocking<T: Sendable>(
        _ context: @autoclosure () -> String, evenIfCancelled: Bool = false, lane: BlockingPool.Lane = .control,
        _ body: @escaping @Sendable (Connection) throws -> T
    ) async throws(VMDriverError) -> T {
        do {
            return try await lane.pool.run(honoringCancellation: !evenIfCancelled) { [connection] in
                try body(connection)
            }
        } catch let error as VMDriverError {
            throw error
        } catch let error as LibvirtError {
            throw VMDriverError(error, while: context())
        } catch is CancellationError {
            throw VMDriverError(.failed, "\(context()): cancelled before it started")
        } catch {
            throw VMDriverError(.failed, "\(context()): \(error)", cause: error)
        }
    }
}

/// The parts of a libvirt URI VMDriver needs: driver, transport, and whether a host is named.
struct HostURI {
    var driver: String
    var transport: String?
    var hostName: String?

    var isRemote: Bool {
        guard let hostName, !hostName.isEmpty else { return false }
        return !["localhost", "127.0.0.1", "::1", "[::1]"].contains(hostName)
    }

    init(_ uri: String) throws(VMDriverError) {
        // A NUL would end the C string libvirt gets early (it would connect somewhere else than
        // the URI says); control characters and spaces are in no libvirt URI.
        guard uri.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value != 127 }),
            let components = URLComponents(string: uri), let scheme = components.scheme, !scheme.isEmpty,
            uri.contains(":/")
        else {
            throw VMDriverError(
                .invalidParameter,
                "'\(uri)' is not a libvirt URI: expected DRIVER[+TRANSPORT]://[HOST]/PATH, for example qemu:///system or qemu+tcp://host/system"
            )
        }
        let parts = scheme.split(separator: "+", maxSplits: 1).map(String.init)
        driver = parts[0]
        transport = parts.count > 1 ? parts[1] : nil
        hostName = components.host
    }
}
