import AVFoundation
import CoreLocation
import MenqianKit
import Security
import SwiftUI
import UIKit

struct ChecklistView: View {
    @EnvironmentObject var model: AppModel
    let inspectionId: String
    @State private var inspection: InspectionView?
    @State private var result: SubmitResult?
    @State private var photoFor: String?

    var body: some View {
        List {
            if let r = result { Text("得分 \(r.score) · \(r.verdict)") }
            ForEach(inspection?.lines ?? [], id: \.code) { line in
                VStack(alignment: .leading) {
                    Text("\(line.duty)｜\(line.text)")
                    HStack {
                        choice("合格", line, .pass)
                        choice("不合格", line, .fail)
                        choice("不适用", line, .notApplicable)
                    }
                }
            }
            if inspection?.submitted == false {
                Button("提交检查") {
                    model.run {
                        result = try await model.menqian.submit(inspection: inspectionId)
                        try await reload()
                    }
                }
            }
        }
        .navigationTitle(inspection?.checklist ?? "检查")
        .sheet(item: $photoFor) { code in
            CameraPicker { path in
                model.run {
                    let photo = try await model.menqian.capturePhoto(
                        path: path, takenBy: model.user ?? "", fix: Location.shared.fix, shopId: inspection?.shopId)
                    try? FileManager.default.removeItem(atPath: path)
                    try await model.menqian.record(inspection: inspectionId, code: code, outcome: .fail, photos: [photo.hash])
                    try await reload()
                }
            }
        }
        .task { model.run { try await reload() } }
    }

    private func reload() async throws {
        inspection = try await model.menqian.inspection(id: inspectionId)
    }

    private func choice(_ label: String, _ line: ChecklistLine, _ outcome: Outcome) -> some View {
        Button(label) {
            if outcome == .fail && line.photoOnFail {
                photoFor = line.code
            } else {
                model.run {
                    try await model.menqian.record(inspection: inspectionId, code: line.code, outcome: outcome)
                    try await reload()
                }
            }
        }
        .buttonStyle(.bordered)
        .tint(line.outcome == outcome ? .accentColor : .secondary)
        .disabled(inspection?.submitted ?? true)
    }
}

// `@retroactive` needs the Swift 6 compiler (Xcode 16 or newer).
extension String: @retroactive Identifiable {
    public var id: String { self }
}

struct ReportView: View {
    @EnvironmentObject var model: AppModel
    @Environment(\.dismiss) private var dismiss
    let shop: ShopView?
    @State private var category = "0504"
    @State private var description = ""
    @State private var photo: String?
    @State private var camera = false

    var body: some View {
        Form {
            if let s = shop { Text("上报：\(s.name)") }
            TextField("问题类别编码（如 0504 店外经营）", text: $category)
            TextField("问题描述", text: $description)
            Button(photo == nil ? "拍照" : "重新拍照") { camera = true }
            Button("提交上报") {
                let fix = Location.shared.fix
                guard let lat = fix?.lat ?? shop?.lat, let lon = fix?.lon ?? shop?.lon else { return }
                model.run {
                    var photos: [String] = []
                    if let path = photo {
                        let p = try await model.menqian.capturePhoto(
                            path: path, takenBy: model.user ?? "", fix: fix, shopId: shop?.id)
                        try? FileManager.default.removeItem(atPath: path)
                        photos = [p.hash]
                    }
                    let report = CaseReport(
                        source: model.role == "steward" ? .steward : .inspection,
                        category: category, lat: lat, lon: lon, shopId: shop?.id,
                        photos: photos, description: description,
                        reportedBy: model.user ?? "", reportedAtMs: Int64(Date().timeIntervalSince1970 * 1000))
                    _ = try await model.menqian.report(report)
                    dismiss()
                }
            }
        }
        .sheet(isPresented: $camera) { CameraPicker { photo = $0 } }
        .navigationTitle("上报问题")
    }
}

struct PatrolView: View {
    @EnvironmentObject var model: AppModel
    @ObservedObject private var location = Location.shared

    var body: some View {
        Form {
            Text(location.patrol == nil ? "开始巡查后记录 GPS 轨迹" : "巡查中：已记录 \(location.recorded) 个点")
            if location.patrol == nil {
                Button("开始巡查") { location.start(model: model) }
            } else {
                Button("结束巡查") { location.stop(model: model) }
            }
        }
        .navigationTitle("巡查")
    }
}

struct SyncView: View {
    @EnvironmentObject var model: AppModel

    var body: some View {
        Form {
            Text("待上传的修改：\(model.pending)")
            switch model.sync {
            case let .running(phase, done, total)?:
                Text(phase == .push ? "正在上传…" : "正在下载…")
                if total > 0 { ProgressView(value: Double(done), total: Double(total)) }
            case let .done(summary)?:
                Text("同步完成：上传 \(summary.pushed)，下载 \(summary.pulled)")
            case let .failed(problem)?:
                Text(problem.text)
            case nil:
                Text("尚未同步")
            }
            Button("立即同步") { model.syncNow() }
        }
        .navigationTitle("同步")
    }
}

/// Scans a signboard QR code with AVFoundation (no third-party SDK). The
/// camera keeps running after a refused code (a payment code, a torn board):
/// the gate says why under the preview and lets the officer aim again.
struct ScanView: View {
    @EnvironmentObject var model: AppModel
    @State private var shop: String?
    @State private var refused: Problem?
    @State private var gate: ScanGate<String>?

    var body: some View {
        VStack {
            if let r = refused { Text(r.text + "，请对准门牌二维码重新扫描").padding() }
            QRScanner { payload in
                guard let gate else { return }
                Task {
                    switch await gate.offer(payload) {
                    case let .accepted(id): refused = nil; shop = id
                    case let .refused(p): refused = p
                    case .ignored: break
                    }
                }
            }
        }
        .onAppear {
            let menqian = model.menqian
            gate = ScanGate { try await menqian.scan($0).id }
        }
        .navigationDestination(item: $shop) { ShopPage(shopId: $0) }
        .navigationTitle("扫描门牌码")
    }
}

struct QRScanner: UIViewControllerRepresentable {
    let found: (String) -> Void

    func makeUIViewController(context: Context) -> ScannerController {
        let controller = ScannerController()
        controller.found = found
        return controller
    }

    func updateUIViewController(_ controller: ScannerController, context: Context) {}
}

/// Hands every decoded payload to `found`; the caller's gate decides (the
/// camera does not stop after the first code, which may be refused).
final class ScannerController: UIViewController, AVCaptureMetadataOutputObjectsDelegate {
    var found: ((String) -> Void)?
    private let session = AVCaptureSession()

    override func viewDidLoad() {
        super.viewDidLoad()
        guard let camera = AVCaptureDevice.default(for: .video),
              let input = try? AVCaptureDeviceInput(device: camera),
              session.canAddInput(input) else { return }
        session.addInput(input)
        let output = AVCaptureMetadataOutput()
        session.addOutput(output)
        output.setMetadataObjectsDelegate(self, queue: .main)
        output.metadataObjectTypes = [.qr]
        let preview = AVCaptureVideoPreviewLayer(session: session)
        preview.frame = view.layer.bounds
        preview.videoGravity = .resizeAspectFill
        view.layer.addSublayer(preview)
        DispatchQueue.global(qos: .userInitiated).async { self.session.startRunning() }
    }

    func metadataOutput(_ output: AVCaptureMetadataOutput, didOutput objects: [AVMetadataObject], from connection: AVCaptureConnection) {
        guard let code = objects.first as? AVMetadataMachineReadableCodeObject, let text = code.stringValue else { return }
        found?(text)
    }

    override func viewWillDisappear(_ animated: Bool) {
        super.viewWillDisappear(animated)
        DispatchQueue.global(qos: .userInitiated).async { self.session.stopRunning() }
    }
}

/// Takes a photo and hands back the path of the JPEG it wrote.
struct CameraPicker: UIViewControllerRepresentable {
    let taken: (String) -> Void

    func makeCoordinator() -> Coordinator { Coordinator(taken) }

    func makeUIViewController(context: Context) -> UIImagePickerController {
        let picker = UIImagePickerController()
        picker.sourceType = UIImagePickerController.isSourceTypeAvailable(.camera) ? .camera : .photoLibrary
        picker.delegate = context.coordinator
        return picker
    }

    func updateUIViewController(_ picker: UIImagePickerController, context: Context) {}

    final class Coordinator: NSObject, UIImagePickerControllerDelegate, UINavigationControllerDelegate {
        let taken: (String) -> Void

        init(_ taken: @escaping (String) -> Void) { self.taken = taken }

        func imagePickerController(_ picker: UIImagePickerController, didFinishPickingMediaWithInfo info: [UIImagePickerController.InfoKey: Any]) {
            defer { picker.dismiss(animated: true) }
            guard let image = info[.originalImage] as? UIImage, let data = image.jpegData(compressionQuality: 0.9) else { return }
            let dir = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
                .appendingPathComponent("evidence", isDirectory: true)
            try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let file = dir.appendingPathComponent("\(Int(Date().timeIntervalSince1970 * 1000)).jpg")
            // Photos cross into the core as file paths (issue 5 turns them into evidence).
            if (try? data.write(to: file)) != nil { taken(file.path) }
        }
    }
}

/// GPS for inspections and patrols; a patrol keeps recording in the
/// background. The recording (batches, storing every fix before the stop,
/// resuming the open patrol) is MenqianKit's PatrolRecorder.
final class Location: NSObject, ObservableObject, CLLocationManagerDelegate {
    static let shared = Location()
    private let manager = CLLocationManager()
    @Published var patrol: String?
    @Published var recorded = 0
    private var recorder: PatrolRecorder?

    override init() {
        super.init()
        manager.delegate = self
        manager.desiredAccuracy = kCLLocationAccuracyBest
        manager.requestWhenInUseAuthorization()
        manager.startUpdatingLocation()
    }

    var fix: Fix? {
        guard let l = manager.location else { return nil }
        return Fix(lat: l.coordinate.latitude, lon: l.coordinate.longitude,
                   accuracyM: l.horizontalAccuracy, atMs: Int64(l.timestamp.timeIntervalSince1970 * 1000))
    }

    @MainActor
    func start(model: AppModel) {
        let recorder = self.recorder ?? PatrolRecorder(menqian: model.menqian)
        self.recorder = recorder
        manager.requestAlwaysAuthorization()
        manager.allowsBackgroundLocationUpdates = true
        manager.showsBackgroundLocationIndicator = true
        model.run {
            self.patrol = try await recorder.start(user: model.user ?? "")
        }
    }

    @MainActor
    func stop(model: AppModel) {
        guard let recorder else { return }
        manager.allowsBackgroundLocationUpdates = false
        model.run {
            try await recorder.stop()
            self.patrol = nil
        }
    }

    func locationManager(_ manager: CLLocationManager, didUpdateLocations locations: [CLLocation]) {
        guard patrol != nil, let recorder else { return }
        let fixes = locations.map {
            TrackFix(lat: $0.coordinate.latitude, lon: $0.coordinate.longitude,
                     accuracyM: $0.horizontalAccuracy, atMs: Int64($0.timestamp.timeIntervalSince1970 * 1000))
        }
        recorded += fixes.count
        // Queued in order: a later stop stores these first.
        recorder.add(fixes)
    }
}

/// The enrollment token and user, in the iOS Keychain.
struct Keychain {
    private let service = "cn.menqian.account"

    func read(_ key: String) -> String? {
        let query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword, kSecAttrService as String: service,
            kSecAttrAccount as String: key, kSecReturnData as String: true,
        ]
        var out: AnyObject?
        guard SecItemCopyMatching(query as CFDictionary, &out) == errSecSuccess, let data = out as? Data else { return nil }
        return String(data: data, encoding: .utf8)
    }

    func write(_ key: String, _ value: String) {
        let query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword, kSecAttrService as String: service,
            kSecAttrAccount as String: key,
        ]
        SecItemDelete(query as CFDictionary)
        var add = query
        add[kSecValueData as String] = Data(value.utf8)
        add[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        SecItemAdd(add as CFDictionary, nil)
    }

    func clear() {
        let query: [String: Any] = [kSecClass as String: kSecClassGenericPassword, kSecAttrService as String: service]
        SecItemDelete(query as CFDictionary)
    }
}
