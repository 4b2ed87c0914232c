/// VMDriver's version: `vmctl --version`, and libvmdriver.so's (scripts/install-c-api.sh reads
/// it from this file; the SONAME carries its first number).
public struct VMDriverVersion: Sendable {
    /// The version, as `MAJOR.MINOR.PATCH`.
    public static let current = "1.0.0"

    private init() {}
}
