import Foundation
internal import Libvirt

extension VirtualMachine {
    /// The `.vmx` this VM was opened from, or the path a VIX clone was given; nil for others.
    public func vmxPath() async throws(VMDriverError) -> String? {
        try await host.blocking("reading the .vmx path of \(label)") { [domain] _ in
            let side: Domain.ModificationImpact = try domain.isActive() ? .live : .config
            return try domain.metadata(.element, uri: VMXRecord.namespace, side).flatMap(VMXRecord.path(inElement:))
        }
    }
}
