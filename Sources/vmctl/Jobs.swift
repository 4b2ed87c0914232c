import ArgumentParser
import Foundation
import VMDriver

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List the jobs running on the host's VMs, whoever started them.",
        discussion: """
            For each VM with a job: what libvirt runs (migration out, save, snapshot, backup …) and its figures, \
            and, where VMDriver left its record, which VMDriver operation it is, which process runs it and whether that \
            process is still alive. A record whose process is gone is cleaned up with `vmctl abort VM`.
            """)

    @ParentCommand var root: VMCtl
    @OptionGroup var output: OutputOptions

    @Argument(help: ArgumentHelp("Only this VM (name or UUID).", valueName: "vm")) var vm: String?

    func run() async throws {
        try await root.connection.withHost { host async throws(VMDriverError) in
            let jobs = try await host.jobs(vm: vm)
            if output.json {
                print(Render.json(jobs))
                return
            }
            if jobs.isEmpty { print("No jobs on host '\(host.name)'.") }
            for job in jobs { print(Self.describe(job)) }
        }
    }

    static func describe(_ job: HostJob) -> String {
        var lines = ["\(job.vm) (\(job.state))"]
        if let libvirt = job.libvirt {
            var line = "  libvirt: \(libvirt.operation?.rawValue ?? "job") (\(libvirt.type))"
            if let elapsed = libvirt.elapsedMilliseconds { line += ", \(String(format: "%.1f", Double(elapsed) / 1000)) s" }
            if let processed = libvirt.dataProcessed {
                line += ", \(size(processed)) moved"
                if let total = libvirt.dataTotal, total > 0 { line += " of \(size(total))" }
            }
            lines.append(line)
            var left: [String] = []
            // libvirt reports zeros for what has not started yet (memory while disks copy).
            if let memory = libvirt.memoryRemaining, (libvirt.memoryTotal ?? 0) > 0 { left.append("memory \(size(memory))") }
            if let disk = libvirt.diskRemaining, (libvirt.diskTotal ?? 0) > 0 { left.append("disk \(size(disk))") }
            if !left.isEmpty { lines.append("  remaining: " + left.joined(separator: ", ")) }
        } else {
            lines.append("  libvirt: no job")
        }
        if let record = job.record {
            let since = record.started.formatted(.iso8601)
            var line = "  VMDriver: \(record.operation.rawValue)"
            if let target = record.target { line += " to \(target)" }
            line += ", by \(record.owner.program) pid \(record.owner.pid) (\(job.owner?.rawValue ?? "?")) since \(since)"
            lines.append(line)
            if job.owner == .gone { lines.append("  its process is gone: `vmctl abort \(job.vm)` ends it and cleans up") }
            for image in record.images { lines.append("  made on the target: \(image)") }
            for pool in record.pools { lines.append("  transient pool on the target: \(pool.name)") }
        }
        for clone in job.clones {
            let since = clone.started.formatted(.iso8601)
            lines.append(
                "  VMDriver: clone '\(clone.targetName ?? "?")', by \(clone.owner.program) pid \(clone.owner.pid) "
                    + "(\(clone.ownerStatus.rawValue)) since \(since)")
            if clone.ownerStatus == .gone {
                lines.append("  its process is gone: `vmctl abort \(job.vm)` removes what it made")
            }
            for file in clone.files { lines.append("  the clone's file: \(file)") }
            for merge in clone.merges { lines.append("  temporary overlay of \(merge.disk): \(merge.overlay)") }
        }
        return lines.joined(separator: "\n")
    }

    static func size(_ bytes: UInt64) -> String {
        bytes >= 1 << 30
            ? String(format: "%.2f GiB", Double(bytes) / 1_073_741_824) : String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }
}
