// Records a patrol's track for the location service, off the main thread, with
// the same rules and the same shape as Android's PatrolRecorder (tested there on
// the JVM): one ordered command queue read by one task; fixes are buffered and
// appended in batches, a stop stores every buffered fix before it ends the
// patrol, and a restart continues the open patrol.
import Foundation

public final class PatrolRecorder: @unchecked Sendable {
    private enum Command {
        case start(user: String, done: CheckedContinuation<String, Error>)
        case add([TrackFix])
        case stop(done: CheckedContinuation<Void, Error>)
    }

    /// One queue for every call, read by one task: `add` from the location
    /// delegate, then `stop`, are taken in the order they were made. (Separate
    /// `Task`s calling an actor carry no such promise: a stop could overtake
    /// the last fixes.)
    private let commands: AsyncStream<Command>.Continuation

    public init(menqian: Menqian, batchSize: Int = 10) {
        let (stream, commands) = AsyncStream<Command>.makeStream()
        self.commands = commands
        Task {
            let worker = Worker(menqian: menqian, batchSize: batchSize)
            for await command in stream {
                await worker.run(command)
            }
        }
    }

    deinit { commands.finish() }

    /// Starts recording for `user`: continues their open patrol if it began
    /// within 12 hours, else starts a new one. Returns the patrol's id.
    public func start(user: String) async throws -> String {
        try await withCheckedThrowingContinuation { commands.yield(.start(user: user, done: $0)) }
    }

    /// Queues fixes; never blocks, safe from the location delegate.
    public func add(_ fixes: [TrackFix]) {
        commands.yield(.add(fixes))
    }

    /// Stores every queued fix, then ends the patrol.
    public func stop() async throws {
        try await withCheckedThrowingContinuation { commands.yield(.stop(done: $0)) }
    }

    /// The recorder's state, touched only by the one task reading the queue.
    private final class Worker {
        let menqian: Menqian
        let batchSize: Int
        var buffer: [TrackFix] = []
        var patrolId: String?

        init(menqian: Menqian, batchSize: Int) {
            self.menqian = menqian
            self.batchSize = batchSize
        }

        func run(_ command: Command) async {
            switch command {
            case let .start(user, done):
                if let id = patrolId { return done.resume(returning: id) }
                do {
                    let started = try await menqian.resumeOrStartPatrol(user: user)
                    patrolId = started.id
                    done.resume(returning: started.id)
                } catch {
                    done.resume(throwing: error)
                }
            case let .add(fixes):
                guard patrolId != nil else { return }
                buffer.append(contentsOf: fixes)
                if buffer.count >= batchSize { try? await flush() }
            case let .stop(done):
                guard let id = patrolId else { return done.resume() }
                do {
                    try await flush()
                    guard patrolId != nil else { return done.resume() }
                    try await menqian.stopPatrol(id)
                    patrolId = nil
                    done.resume()
                } catch {
                    done.resume(throwing: error)
                }
            }
        }

        /// Stores the buffer (the core drops fixes that can never be stored);
        /// only a failing store keeps them buffered for the next try.
        func flush() async throws {
            guard let id = patrolId, !buffer.isEmpty else { return }
            let points = buffer
            do {
                _ = try await menqian.recordFixes(patrol: id, points: points)
            } catch Problem.notAllowed {
                // The patrol was ended elsewhere: nothing more can join it.
                buffer.removeAll()
                patrolId = nil
                return
            }
            buffer.removeFirst(points.count)
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
