// The app's way into the core: async functions that run the generated
// bindings off the main thread and throw a `Problem` a screen can show or act
// on; sync is an AsyncStream of `SyncState` that cancels the sync when the
// consumer stops listening.
import Foundation
@_exported import MenqianCore

/// The core's errors, as cases a screen handles.
public enum Problem: Error, Equatable {
    case invalid(field: String, reason: String)
    case notFound(String)
    case badQrCode(String)
    case incomplete(codes: [String])
    case photoRequired(code: String)
    case notAllowed(String)
    case offline(String)
    /// The station's certificate is not the one this phone trusts: nothing was sent.
    case untrusted(String)
    case unauthorized(String)
    case rejected(String)
    case server(String)
    case cancelled
    case storage(String)
    case badPhoto(String)

    init(_ e: MenqianError) {
        switch e {
        case let .InvalidInput(field, reason): self = .invalid(field: field, reason: reason)
        case let .NotFound(what): self = .notFound(what)
        case let .BadQrCode(reason): self = .badQrCode(reason)
        case let .IncompleteInspection(codes): self = .incomplete(codes: codes)
        case let .PhotoRequired(code): self = .photoRequired(code: code)
        case let .NotAllowed(reason): self = .notAllowed(reason)
        case let .Offline(reason): self = .offline(reason)
        case let .Untrusted(reason): self = .untrusted(reason)
        case let .Unauthorized(reason): self = .unauthorized(reason)
        case let .Rejected(reason): self = .rejected(reason)
        case let .Server(reason): self = .server(reason)
        case .Cancelled: self = .cancelled
        case let .Storage(reason): self = .storage(reason)
        case let .BadPhoto(reason): self = .badPhoto(reason)
        }
    }

    /// The core's error this stands for.
    var core: MenqianError {
        switch self {
        case let .invalid(field, reason): return .InvalidInput(field: field, reason: reason)
        case let .notFound(what): return .NotFound(what: what)
        case let .badQrCode(reason): return .BadQrCode(reason: reason)
        case let .incomplete(codes): return .IncompleteInspection(codes: codes)
        case let .photoRequired(code): return .PhotoRequired(code: code)
        case let .notAllowed(reason): return .NotAllowed(reason: reason)
        case let .offline(reason): return .Offline(reason: reason)
        case let .untrusted(reason): return .Untrusted(reason: reason)
        case let .unauthorized(reason): return .Unauthorized(reason: reason)
        case let .rejected(reason): return .Rejected(reason: reason)
        case let .server(reason): return .Server(reason: reason)
        case .cancelled: return .Cancelled
        case let .storage(reason): return .Storage(reason: reason)
        case let .badPhoto(reason): return .BadPhoto(reason: reason)
        }
    }

    /// What the screen says, in Chinese: the core's text (`problemText`), the
    /// one home of these texts for both apps.
    public var text: String { problemText(error: core) }
}

/// Where a sync stands.
public enum SyncState: Equatable {
    case running(phase: Phase, done: UInt64, total: UInt64)
    case done(SyncSummary)
    case failed(Problem)
}

/// The boot clock for records' clock evidence: CLOCK_MONOTONIC on Darwin
/// counts sleep and cannot be set by the user; the boot time tells a reboot
/// apart.
struct ClockUnavailable: Error {}

final class DarwinClock: DeviceClock {
    func bootId() throws -> String {
        var boot = timeval()
        var size = MemoryLayout<timeval>.size
        guard sysctlbyname("kern.boottime", &boot, &size, nil, 0) == 0 else {
            throw ClockUnavailable()
        }
        return "\(boot.tv_sec).\(boot.tv_usec)"
    }

    func sinceBootMs() throws -> Int64 {
        Int64(clock_gettime_nsec_np(CLOCK_MONOTONIC) / 1_000_000)
    }
}

/// One phone's store, safe to share: every call runs on a background queue.
public final class Menqian: @unchecked Sendable {
    public let store: MenqianStore
    private let queue = DispatchQueue(label: "cn.menqian.store", qos: .userInitiated)

    public init(path: String, qrHosts: [String]) throws {
        do {
            store = try MenqianStore.open(path: path, qrHosts: qrHosts)
        } catch let e as MenqianError {
            throw Problem(e)
        }
        store.setDeviceClock(clock: DarwinClock())
    }

    private func call<T>(_ work: @escaping (MenqianStore) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [store] in
                do {
                    continuation.resume(returning: try work(store))
                } catch let e as MenqianError {
                    continuation.resume(throwing: Problem(e))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    public func importRegistry(json: String) async throws -> ImportSummary {
        try await call { try $0.importRegistryJson(json: json, listener: nil) }
    }

    public func scan(_ payload: String) async throws -> ShopView {
        try await call { try $0.scan(payload: payload) }
    }

    public func shop(id: String) async throws -> ShopView {
        try await call { try $0.shop(id: id) }
    }

    public func search(_ text: String, limit: UInt32 = 50) async throws -> [ShopRow] {
        try await call { try $0.searchShops(text: text, limit: limit) }
    }

    public func shops(on street: String, lane: String? = nil) async throws -> [ShopRow] {
        try await call { try $0.shopsOn(street: street, lane: lane) }
    }

    public func startInspection(shopId: String, template: String, inspector: String, fix: Fix?) async throws -> String {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return try await call {
            try $0.startInspection(shopId: shopId, templateId: template, inspector: inspector, startedAtMs: now, fix: fix)
        }
    }

    public func inspection(id: String) async throws -> InspectionView {
        try await call { try $0.inspection(id: id) }
    }

    public func record(inspection: String, code: String, outcome: Outcome, note: String? = nil, photos: [String] = []) async throws {
        try await call { try $0.recordItem(inspectionId: inspection, code: code, outcome: outcome, note: note, photos: photos) }
    }

    /// Turns the camera's JPEG into evidence (oriented, 1600 px, watermarked,
    /// EXIF removed); the returned hash goes into a record's photos. The camera
    /// file may be deleted afterwards.
    public func capturePhoto(path: String, takenBy: String, fix: Fix? = nil, shopId: String? = nil, place: String? = nil) async throws -> PhotoView {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return try await call {
            try $0.capturePhoto(path: path, takenBy: takenBy, atMs: now, fix: fix, shopId: shopId, place: place)
        }
    }

    public func photoPath(hash: String) async throws -> String {
        try await call { try $0.photoPath(hash: hash) }
    }

    /// 时间可信 / 时间存疑 / 时间待核验 for an inspection, report or patrol.
    public func timeCheck(record: String) async throws -> TimeVerdict {
        try await call { try $0.timeCheck(recordId: record) }
    }

    public func patrolSummary(_ patrol: String) async throws -> PatrolSummary {
        try await call { try $0.patrolSummary(patrolId: patrol) }
    }

    public func submit(inspection: String) async throws -> SubmitResult {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return try await call { try $0.submitInspection(id: inspection, endedAtMs: now) }
    }

    public func report(_ report: CaseReport) async throws -> String {
        try await call { try $0.reportCase(report: report) }
    }

    public func cases(limit: UInt32 = 100) async throws -> [CaseRow] {
        try await call { try $0.cases(status: nil, limit: limit) }
    }

    /// Moves a case (受理, 派遣 with a whistle, 处置, 核查, 结案); a move the
    /// role may not make throws `NotAllowed`.
    public func moveCase(_ id: String, move: CaseMoveInput) async throws {
        try await call { try $0.moveCase(id: id, m: move) }
    }

    /// Today's due shops in walking order from where the officer stands.
    public func todayPlan(subdistrict: String?, lat: Double, lon: Double) async throws -> DayPlanView {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return try await call { try $0.todayPlan(subdistrict: subdistrict, lat: lat, lon: lon, nowMs: now) }
    }

    /// A shop's credit grade (A–D), stars, red flag and last week's place.
    public func standing(shopId: String) async throws -> StandingView {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return try await call { try $0.shopStanding(shopId: shopId, nowMs: now) }
    }

    /// One shop's rectification ledger, or every open item on the phone.
    public func rectifications(shopId: String?) async throws -> [RectificationView] {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return try await call { try $0.rectifications(shopId: shopId, nowMs: now) }
    }

    public func startPatrol(user: String) async throws -> String {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return try await call { try $0.startPatrol(user: user, atMs: now) }
    }

    public func appendTrack(patrol: String, points: [TrackFix]) async throws {
        try await call { try $0.appendTrack(patrolId: patrol, points: points) }
    }

    /// Stores a recorder's batch, dropping fixes that can never be stored; returns how many were dropped.
    public func recordFixes(patrol: String, points: [TrackFix]) async throws -> UInt32 {
        try await call { try $0.recordFixes(patrolId: patrol, points: points) }
    }

    public func stopPatrol(_ patrol: String) async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await call { try $0.stopPatrol(patrolId: patrol, atMs: now) }
    }

    /// The user's open patrol if it began within 12 hours (the app was killed), else a new one.
    public func resumeOrStartPatrol(user: String) async throws -> PatrolStart {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return try await call { try $0.resumeOrStartPatrol(user: user, atMs: now) }
    }

    /// Enrolls with the station's address and a code as typed (a public certificate over https).
    public func enroll(server: String, code: String, deviceName: String) async throws -> Enrollment {
        try await call { try $0.enroll(serverUrl: server, code: code, deviceName: deviceName) }
    }

    /// Enrolls through the station's link or QR code; a CA pin in it makes this
    /// phone trust the station's own CA from then on. Keep `serverUrl` with the token.
    public func enrollLink(_ link: String, deviceName: String) async throws -> Enrollment {
        try await call { try $0.enrollLink(link: link, deviceName: deviceName) }
    }

    public func pendingChanges() async throws -> UInt64 {
        try await call { try $0.pendingChanges() }
    }

    /// Syncs with the station. The stream ends after `.done` or `.failed`;
    /// when the consumer stops iterating, the sync is cancelled at its next page.
    public func sync(server: String, token: String) -> AsyncStream<SyncState> {
        AsyncStream { continuation in
            let cancel = CancelHandle()
            let listener = StreamListener(continuation)
            continuation.onTermination = { _ in cancel.cancel() }
            queue.async { [store] in
                do {
                    let summary = try store.sync(serverUrl: server, token: token, listener: listener, cancel: cancel)
                    continuation.yield(.done(summary))
                } catch let e as MenqianError {
                    continuation.yield(.failed(Problem(e)))
                } catch {
                    continuation.yield(.failed(.storage(error.localizedDescription)))
                }
                continuation.finish()
            }
        }
    }
}

/// Forwards the core's progress into an AsyncStream.
final class StreamListener: ProgressListener, @unchecked Sendable {
    private let continuation: AsyncStream<SyncState>.Continuation

    init(_ continuation: AsyncStream<SyncState>.Continuation) {
        self.continuation = continuation
    }

    func onProgress(phase: Phase, done: UInt64, total: UInt64) throws -> Bool {
        continuation.yield(.running(phase: phase, done: done, total: total))
        return true
    }
}
