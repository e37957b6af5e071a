// The Menqian iOS app: the same screens as Android — enroll, today's list,
// scan, shop page, checklist with photo capture, issue report, patrol with
// background location, sync status — over MenqianKit. Build with Xcode
// (see ios/MenqianApp/project.yml and the README).
import SwiftUI
import MenqianKit

@main
struct MenqianApp: App {
    @StateObject private var model = AppModel()

    var body: some Scene {
        WindowGroup {
            NavigationStack {
                if model.enrolled {
                    TodayView()
                } else {
                    EnrollView()
                }
            }
            .environmentObject(model)
            .alert(model.problem?.text ?? "", isPresented: Binding(
                get: { model.problem != nil },
                set: { if !$0 { model.problem = nil } }
            )) {
                Button("知道了", role: .cancel) {}
            }
        }
    }
}

/// App state; every action goes through the core.
@MainActor
final class AppModel: ObservableObject {
    static let signboardHost = "mq.fengtai.example.cn"

    let menqian: Menqian
    @Published var problem: Problem?
    @Published var shops: [ShopRow] = []
    /// An officer's plan for today: due shops in walking order, red-flag holders.
    @Published var plan: DayPlanView?
    @Published var sync: SyncState?
    @Published var pending: UInt64 = 0
    @Published var enrolled: Bool
    private let keychain = Keychain()

    init() {
        let dir = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        do {
            menqian = try Menqian(path: dir.appendingPathComponent("menqian.sqlite").path, qrHosts: [Self.signboardHost])
        } catch {
            fatalError("cannot open the store: \(error)")
        }
        enrolled = keychain.read("token") != nil
    }

    var user: String? { keychain.read("user") }
    var role: String? { keychain.read("role") }

    func run(_ work: @escaping () async throws -> Void) {
        Task {
            do {
                try await work()
            } catch let p as Problem {
                problem = p
            } catch {
                problem = .storage(error.localizedDescription)
            }
        }
    }

    /// Enrolls with the station's link (scanned or pasted; it pins the
    /// station's CA), or with an address and a code as typed.
    func enroll(link: String? = nil, server: String = "", code: String = "") {
        run {
            let name = UIDevice.current.name
            let e: Enrollment
            if let link {
                e = try await self.menqian.enrollLink(link, deviceName: name)
            } else {
                e = try await self.menqian.enroll(server: server, code: code, deviceName: name)
            }
            self.keychain.write("server", e.serverUrl)
            self.keychain.write("token", e.token)
            self.keychain.write("user", e.userId)
            self.keychain.write("role", e.role)
            self.enrolled = true
            self.syncNow()
        }
    }

    func load(query: String) {
        run {
            let planner = self.role == "officer" || self.role == "lane_chief"
            if query.isEmpty, planner, let fix = Location.shared.fix {
                self.plan = try await self.menqian.todayPlan(subdistrict: nil, lat: fix.lat, lon: fix.lon)
            } else {
                self.plan = nil
            }
            self.shops = query.isEmpty ? try await self.menqian.shops(on: "富义街") : try await self.menqian.search(query)
            self.pending = try await self.menqian.pendingChanges()
        }
    }

    func syncNow() {
        guard let server = keychain.read("server"), let token = keychain.read("token") else { return }
        Task {
            for await state in menqian.sync(server: server, token: token) {
                sync = state
                if case .failed(.unauthorized) = state {
                    keychain.clear()
                    enrolled = false
                }
            }
            pending = (try? await menqian.pendingChanges()) ?? pending
        }
    }
}

struct EnrollView: View {
    @EnvironmentObject var model: AppModel
    @State private var server = "https://"
    @State private var code = ""
    @State private var scanning = false

    var body: some View {
        Form {
            Section("扫描登记二维码") {
                Button("扫码登记") { scanning = true }
            }
            Section("或手动输入") {
                TextField("服务器地址", text: $server).textInputAutocapitalization(.never)
                TextField("一次性登记码（8位）", text: $code).textInputAutocapitalization(.characters)
                Button("登记本机") { model.enroll(server: server, code: code) }.disabled(code.count != 8)
            }
        }
        .sheet(isPresented: $scanning) {
            QRScanner { link in
                guard scanning else { return }
                scanning = false
                model.enroll(link: link)
            }
        }
        .navigationTitle("设备登记")
    }
}

struct TodayView: View {
    @EnvironmentObject var model: AppModel
    @State private var query = ""

    var body: some View {
        List {
            if let plan = model.plan {
                Section("今日任务 \(plan.date)：\(plan.stops.count) 家，步行约 \(Int(plan.walkM)) 米") {
                    ForEach(plan.stops, id: \.shopId) { stop in
                        NavigationLink(destination: ShopPage(shopId: stop.shopId)) {
                            VStack(alignment: .leading) {
                                Text("\(stop.name)  \(String(repeating: "★", count: Int(stop.stars)))  \(stop.grade)级")
                                Text("\(stop.reason) · \(stop.address) · \(Int(stop.legM)) 米").font(.caption)
                            }
                        }
                    }
                    ForEach(plan.exempt, id: \.shopId) { shop in
                        NavigationLink("🚩 \(shop.name) · \(shop.badge)", destination: ShopPage(shopId: shop.shopId))
                    }
                }
            } else {
                ForEach(model.shops, id: \.id) { shop in
                    NavigationLink(destination: ShopPage(shopId: shop.id)) {
                        VStack(alignment: .leading) {
                            Text(shop.name)
                            Text(shop.address).font(.caption)
                        }
                    }
                }
            }
        }
        .searchable(text: $query, prompt: "搜索店名或地址")
        .onChange(of: query) { model.load(query: $0) }
        .onAppear { model.load(query: query) }
        .navigationTitle("今日巡查")
        .toolbar {
            NavigationLink("扫码") { ScanView() }
            NavigationLink("上报") { ReportView(shop: nil) }
            NavigationLink("巡查") { PatrolView() }
            NavigationLink(model.pending > 0 ? "同步（\(model.pending)）" : "同步") { SyncView() }
        }
    }
}

struct ShopPage: View {
    @EnvironmentObject var model: AppModel
    let shopId: String
    @State private var shop: ShopView?
    @State private var standing: StandingView?
    @State private var items: [RectificationView] = []
    @State private var inspection: String?

    var body: some View {
        Form {
            if let s = shop {
                Text(s.name).font(.headline)
                Text("\(s.category) · \(s.address)")
                Text("门牌码 \(s.code)")
                if !s.contactPerson.isEmpty { Text("联系人 \(s.contactPerson) \(s.contactPhone)") }
                Text(s.letter.map { "已签责任书（\($0)）" } ?? "未签责任书")
                if let st = standing {
                    Text("\(String(repeating: "★", count: Int(st.stars))) \(st.gradeLabel)（信用分 \(st.creditScore)）\(st.exempt ? " · 🚩流动红旗 免检一周" : "")")
                }
                ForEach(items.filter { !$0.closed }, id: \.id) { item in
                    Text("整改：\(item.itemText) · \(item.state)")
                }
                if model.role != "steward" {
                    Button("开始检查") {
                        model.run {
                            inspection = try await model.menqian.startInspection(
                                shopId: s.id, template: "beijing-1v5", inspector: model.user ?? "", fix: Location.shared.fix)
                        }
                    }
                }
                NavigationLink("上报问题") { ReportView(shop: s) }
            }
        }
        .navigationDestination(item: $inspection) { ChecklistView(inspectionId: $0) }
        .task {
            model.run {
                shop = try await model.menqian.shop(id: shopId)
                standing = try await model.menqian.standing(shopId: shopId)
                items = try await model.menqian.rectifications(shopId: shopId)
            }
        }
    }
}
