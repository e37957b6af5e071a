// Records a patrol's track for the location service, off the main thread, with
// the same rules as Android's PatrolRecorder (tested there on the JVM): fixes
// are buffered and appended in batches, a stop stores every buffered fix before
// it ends the patrol, and a restart continues the open patrol.
import Foundation

public actor PatrolRecorder {
    private let menqian: Menqian
    private let batchSize: Int
    private var buffer: [TrackFix] = []
    /// The patrol being recorded, or nil.
    public private(set) var patrolId: String?
    /// The last problem appending points met.
    public private(set) var problem: Problem?

    public init(menqian: Menqian, batchSize: Int = 10) {
        self.menqian = menqian
        self.batchSize = batchSize
    }

    /// Starts recording for `user`: continues their open patrol if it began
    /// within 12 hours, else starts a new one.
    public func start(user: String) async throws -> String {
        if let id = patrolId { return id }
        let started = try await menqian.resumeOrStartPatrol(user: user)
        patrolId = started.id
        return started.id
    }

    /// Buffers fixes; a full batch is appended in one transaction. Calls are
    /// taken in order (the actor's mailbox), so a later `stop` sees them all.
    public func add(_ fixes: [TrackFix]) async {
        guard patrolId != nil else { return }
        buffer.append(contentsOf: fixes)
        if buffer.count >= batchSize { await flush() }
    }

    /// Appends every buffered fix, then ends the patrol.
    public func stop() async throws {
        guard let id = patrolId else { return }
        await flush()
        try await menqian.stopPatrol(id)
        patrolId = nil
    }

    /// Appends the buffer; on failure the fixes stay buffered for the next try.
    private func flush() async {
        guard let id = patrolId, !buffer.isEmpty else { return }
        let points = buffer
        do {
            try await menqian.appendTrack(patrol: id, points: points)
            buffer.removeFirst(points.count)
            problem = nil
        } catch let p as Problem {
            problem = p
        } catch {
            problem = .storage(error.localizedDescription)
        }
    }
}

/// Stands between the camera's decoder and the core, as Android's ScanGate:
/// one payload at a time, the scanner keeps going after a refused code, and the
/// same refused code is not reported again while it stays in view.
public actor ScanGate<T: Sendable> {
    public enum Outcome {
        case accepted(T)
        case refused(Problem)
        case ignored
    }

    private let quiet: TimeInterval
    private let check: @Sendable (String) async throws -> T
    private var busy = false
    private var accepted = false
    private var lastRefused: (payload: String, at: Date)?

    public init(quiet: TimeInterval = 3, check: @escaping @Sendable (String) async throws -> T) {
        self.quiet = quiet
        self.check = check
    }

    public func offer(_ payload: String) async -> Outcome {
        if accepted || busy { return .ignored }
        if let last = lastRefused, last.payload == payload, Date().timeIntervalSince(last.at) < quiet {
            return .ignored
        }
        busy = true
        defer { busy = false }
        do {
            let value = try await check(payload)
            accepted = true
            return .accepted(value)
        } catch let p as Problem {
            lastRefused = (payload, Date())
            return .refused(p)
        } catch {
            lastRefused = (payload, Date())
            return .refused(.storage(error.localizedDescription))
        }
    }

    /// Scans again (the screen came back into view).
    public func reset() {
        accepted = false
        lastRefused = nil
    }
}
