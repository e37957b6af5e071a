package cn.menqian

import cn.menqian.core.CancelHandle
import cn.menqian.core.CaseMoveInput
import cn.menqian.core.CaseReport
import cn.menqian.core.CaseState
import cn.menqian.core.WhistleKind
import cn.menqian.core.DeviceClock
import cn.menqian.core.MenqianException
import cn.menqian.core.Outcome
import cn.menqian.core.Phase
import cn.menqian.core.ProgressListener
import cn.menqian.core.ReportSource
import cn.menqian.core.TrackFix
import kotlinx.coroutines.cancelChildren
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import java.io.File
import java.net.ServerSocket
import java.nio.file.Files
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertIs
import kotlin.test.assertTrue
import kotlin.test.fail

/**
 * JVM tests of the Kotlin layer over the real host-built library and a real
 * sync server on 127.0.0.1 (scripts/kotlin-test.sh builds and runs them):
 *   java -Dmenqian.repo=<repo> -Dmenqian.server=<menqian-sync-server binary> cn.menqian.MenqianTestKt
 */
const val HOST = "mq.fengtai.example.cn"
const val DAY = 1_782_871_200_000L // 2026-07-01 10:00 Beijing

val repo = File(System.getProperty("menqian.repo") ?: ".")
fun fixture(name: String) = File(repo, "fixtures/data/$name").readText()

fun <T> Answer<T>.ok(): T = when (this) {
    is Answer.Ok -> value
    is Answer.Err -> fail("expected a value, got $problem")
}

inline fun <reified P : Problem> Answer<*>.problem(): P = when (this) {
    is Answer.Ok -> fail("expected ${P::class.simpleName}, got $value")
    is Answer.Err -> assertIs<P>(problem)
}

/** A temporary directory, deleted with everything in it when the tests end. */
fun tempDir(prefix: String): File {
    val dir = Files.createTempDirectory(prefix).toFile()
    Runtime.getRuntime().addShutdownHook(Thread { dir.deleteRecursively() })
    return dir
}

/** A fresh phone store with the demo street, checklists and categories. */
suspend fun phone(): Menqian {
    val dir = tempDir("menqian-phone")
    val m = Menqian.open(File(dir, "phone.sqlite").path, listOf(HOST)).ok()
    return m
}

suspend fun seeded(): Menqian {
    val m = phone()
    val imported = m.importRegistry(fixture("fuyi-street.json")).ok()
    assertEquals(120u, imported.created)
    m.importTemplates(fixture("templates.json")).ok()
    m.importCategories(fixture("categories.json")).ok()
    return m
}

val serverBinary: String get() = System.getProperty("menqian.server") ?: fail("-Dmenqian.server is not set")

/**
 * The station server binary, started on a free port with the demo district.
 * With [tls] it serves HTTPS with a private CA of its own, made by
 * `menqian-sync-server tls init`, and its enrollment link pins that CA.
 */
class Station(tls: Boolean = false) : AutoCloseable {
    val port = ServerSocket(0).use { it.localPort }
    private val data = tempDir("menqian-station")
    val url = (if (tls) "https" else "http") + "://127.0.0.1:$port"
    private val process: Process
    /** The one-time code the demo prints for officer-1. */
    val code: String
    /** The enrollment link the demo prints (with the CA pin over TLS). */
    val link: String

    init {
        val args = mutableListOf(serverBinary, "--demo", "--data", data.path, "--listen", "127.0.0.1:$port")
        if (tls) {
            val dir = File(data, "tls")
            val made = ProcessBuilder(serverBinary, "tls", "init", "--dir", dir.path, "--host", "127.0.0.1")
                .redirectErrorStream(true).start()
            val said = made.inputStream.bufferedReader().readText()
            if (made.waitFor() != 0) fail("tls init failed: $said")
            args += listOf(
                "--tls-cert", File(dir, "station.pem").path, "--tls-key", File(dir, "station-key.pem").path,
                "--tls-ca", File(dir, "ca.pem").path,
            )
        }
        process = ProcessBuilder(args).redirectError(ProcessBuilder.Redirect.DISCARD).start()
        val out = process.inputStream.bufferedReader()
        var found: String? = null
        var printed: String? = null
        while (found == null || printed == null) {
            val line = out.readLine() ?: fail("the server exited before printing a code and a link")
            Regex("code \\(valid 24 h\\): ([A-Z0-9]{8})").find(line)?.let { found = it.groupValues[1] }
            Regex("enrollment link[^:]*: (\\S+)").find(line)?.let { printed = it.groupValues[1] }
        }
        code = found!!
        link = printed!!
        // Keep reading: a station printing into a closed pipe would die.
        Thread { out.forEachLine {} }.apply { isDaemon = true }.start()
        // The code is printed before the listener binds: wait until it answers.
        val deadline = System.nanoTime() + 30_000_000_000L
        while (!answers()) {
            if (System.nanoTime() > deadline) fail("the server did not answer on port $port")
            Thread.sleep(50)
        }
    }

    private fun answers(): Boolean = try {
        java.net.Socket("127.0.0.1", port).close()
        true
    } catch (_: java.io.IOException) {
        false
    }

    override fun close() {
        process.destroy()
        process.waitFor(10, TimeUnit.SECONDS)
    }
}

val tests: List<Pair<String, suspend () -> Unit>> = listOf(
    "open a store, import the demo street, scan a signboard" to {
        seeded().use { m ->
            val first = m.shopsOn("富义街").ok().first()
            val shop = m.scan("https://$HOST/s/${first.code}").ok()
            assertEquals(first.name, shop.name)
            assertEquals("右安门街道", shop.subdistrict)
            assertEquals(shop.id, m.shopByCode(first.code).ok().id)
            assertTrue(m.search(shop.name.take(2)).ok().any { it.id == shop.id })
            assertEquals(120, m.shopsOn("富义街").ok().size)
        }
    },
    "an import reports progress; bad JSON and bad records import nothing" to {
        phone().use { m ->
            m.importRegistry("[{\"code\": 1").problem<Problem.Invalid>()
            val broken = fixture("fuyi-street.json").replaceFirst("\"name\":\"", "\"name\":\"  \"  ,\"x\":\"")
            val bad = m.importRegistry(broken).problem<Problem.Invalid>()
            assertEquals("shops[0].name", bad.field)
            assertEquals(0, m.shopsOn("富义街").ok().size)
            val told = mutableListOf<Pair<ULong, ULong>>()
            val listener = object : ProgressListener {
                override fun onProgress(phase: Phase, done: ULong, total: ULong): Boolean {
                    assertEquals(Phase.IMPORT, phase)
                    told += done to total
                    return true
                }
            }
            assertEquals(120u, m.store.importRegistryJson(fixture("fuyi-street.json"), listener).created)
            assertEquals(listOf(120uL to 120uL), told)
        }
    },
    "run and submit an inspection" to {
        seeded().use { m ->
            val shop = m.shopsOn("富义街").ok().first()
            val id = m.startInspection(shop.id, "beijing-1v5", "officer-1", DAY, null).ok()
            val lines = m.inspection(id).ok().lines
            assertEquals("核实是否签订门前三包责任书", lines.first().text)
            m.submit(id, DAY + 60_000).problem<Problem.Incomplete>()
            for (line in lines) m.record(id, line.code, Outcome.PASS).ok()
            val result = m.submit(id, DAY + 60_000).ok()
            assertEquals(100u, result.score)
            assertTrue(result.passed)
            assertEquals("合格", result.verdict)
            // Submitted: evidence, never changed again.
            m.record(id, lines.first().code, Outcome.FAIL).problem<Problem.NotAllowed>()
        }
    },
    "a failed item needs a photo before submitting" to {
        seeded().use { m ->
            val shop = m.shopsOn("富义街").ok().first()
            val id = m.startInspection(shop.id, "beijing-1v5", "officer-1", DAY, null).ok()
            val lines = m.inspection(id).ok().lines
            val needsPhoto = lines.first { it.photoOnFail }
            for (line in lines) m.record(id, line.code, Outcome.PASS).ok()
            m.record(id, needsPhoto.code, Outcome.FAIL, "门前堆物").ok()
            val refused = m.submit(id, DAY + 1).problem<Problem.PhotoRequired>()
            assertEquals(needsPhoto.code, refused.code)
            // A made-up photo id is refused; a real camera photo becomes evidence.
            m.record(id, needsPhoto.code, Outcome.FAIL, "门前堆物", listOf("photo-1")).problem<Problem.Invalid>()
            val camera = "/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg"
            val photo = m.capturePhoto(camera, "王磊", DAY, shopId = shop.id).ok()
            assertEquals(1600u, photo.width)
            assertEquals(900u, photo.height)
            assertEquals(64, photo.hash.length)
            assertTrue(File(m.photoPath(photo.hash).ok()).length() == photo.bytes.toLong())
            m.capturePhoto("/usr/share/backgrounds/mate/abstract/Flow.png", "王磊", DAY).problem<Problem.BadPhoto>()
            // The photo and its thumbnail wait for upload; the refused PNG left nothing.
            assertEquals(2L, m.pendingPhotos().ok())
            m.record(id, needsPhoto.code, Outcome.FAIL, "门前堆物", listOf(photo.hash)).ok()
            val result = m.submit(id, DAY + 1).ok()
            assertEquals("需整改", result.verdict)
            assertEquals(listOf(needsPhoto.code), result.failed)
        }
    },
    "report an issue and list it" to {
        seeded().use { m ->
            val shop = m.shopsOn("富义街").ok().first()
            val report = CaseReport(
                ReportSource.STEWARD, "0504", shop.lat, shop.lon, shop.id, emptyList(),
                "店外摆摊", "steward-1", DAY,
            )
            val id = m.report(report).ok()
            val listed = m.cases().ok().single()
            assertEquals(id, listed.id)
            assertEquals("已上报", listed.statusLabel)
            m.report(report.copy(category = "9999")).problem<Problem.Invalid>()
        }
    },
    "typed errors: bad codes, unknown shops, bad times" to {
        seeded().use { m ->
            m.scan("https://evil.example.com/s/110106000001X").problem<Problem.BadQrCode>()
            m.scan("not a code").problem<Problem.BadQrCode>()
            // A typed code with a wrong check character, and a valid one nobody holds.
            m.shopByCode("1101069999990").problem<Problem.BadQrCode>()
            m.shopByCode("1101069999991").problem<Problem.NotFound>()
            m.shop("shop/nope").problem<Problem.NotFound>()
            val bad = m.startInspection("shop/nope", "beijing-1v5", "officer-1", DAY, null)
            bad.problem<Problem.NotFound>()
            m.startPatrol("officer-1", Long.MAX_VALUE).problem<Problem.Invalid>()
        }
    },
    "sync against a real station server, as a Flow" to {
        Station().use { station ->
            phone().use { m ->
                val enrolled = m.enroll(station.url, station.code, "测试手机").ok()
                assertEquals("officer-1", enrolled.userId)
                val states = m.sync(station.url, enrolled.token).toList()
                val done = assertIs<SyncState.Done>(states.last())
                assertTrue(done.summary.pulled >= 120u, "pulled ${done.summary.pulled}")
                assertTrue(states.any { it is SyncState.Running && it.phase == Phase.PULL })
                assertEquals(120, m.shopsOn("富义街").ok().size)
                // Work offline, then sync it up.
                val shop = m.shopsOn("富义街").ok().first()
                val id = m.startInspection(shop.id, "beijing-1v5", "officer-1", DAY, null).ok()
                for (line in m.inspection(id).ok().lines) m.record(id, line.code, Outcome.PASS).ok()
                m.submit(id, DAY + 1).ok()
                assertTrue(m.pendingChanges().ok() > 0)
                val second = assertIs<SyncState.Done>(m.sync(station.url, enrolled.token).toList().last())
                assertTrue(second.summary.pushed > 0u)
                assertEquals(0L, m.pendingChanges().ok())
                // A wrong token is refused with a typed problem; the work is safe.
                val refused = m.sync(station.url, "wrong").toList().last()
                assertIs<Problem.Unauthorized>(assertIs<SyncState.Failed>(refused).problem)
            }
        }
    },
    "records carry clock evidence: a phone clock set back is flagged" to {
        Station().use { station ->
            phone().use { m ->
                val boot = System.nanoTime()
                m.setDeviceClock(object : DeviceClock {
                    override fun bootId() = "jvm-test-boot"
                    override fun sinceBootMs() = (System.nanoTime() - boot) / 1_000_000
                })
                val token = m.enroll(station.url, station.code, "手机").ok().token
                assertIs<SyncState.Done>(m.sync(station.url, token).toList().last())
                val shop = m.shopsOn("富义街").ok().first()
                val now = System.currentTimeMillis()
                val honest = m.startInspection(shop.id, "beijing-1v5", "officer-1", now, null).ok()
                val verdict = m.timeCheck(honest).ok()
                assertEquals("时间可信", verdict.label)
                val setBack = m.startInspection(shop.id, "beijing-1v5", "officer-1", now - 7_200_000, null).ok()
                val flagged = m.timeCheck(setBack).ok()
                assertEquals("时间存疑", flagged.label)
                assertTrue(flagged.flagged)
                assertTrue(kotlin.math.abs(flagged.skewMs!! + 7_200_000) < 60_000, "skew ${flagged.skewMs}")
                // A clock that throws leaves records without monotonic evidence, nothing worse.
                m.setDeviceClock(object : DeviceClock {
                    override fun bootId(): String = throw IllegalStateException("no clock")
                    override fun sinceBootMs(): Long = throw IllegalStateException("no clock")
                })
                val unclocked = m.startInspection(shop.id, "beijing-1v5", "officer-1", now, null).ok()
                assertEquals("时间待核验", m.timeCheck(unclocked).ok().label)
            }
        }
    },
    "a listener that throws does not break the sync or the store" to {
        Station().use { station ->
            phone().use { m ->
                val token = m.enroll(station.url, station.code, "手机").ok().token
                var calls = 0
                val throwing = object : ProgressListener {
                    override fun onProgress(phase: Phase, done: ULong, total: ULong): Boolean {
                        calls++
                        throw IllegalStateException("a buggy screen")
                    }
                }
                val summary = m.store.sync(station.url, token, throwing, null)
                assertTrue(calls > 0)
                assertTrue(summary.pulled >= 120u)
                assertEquals(120, m.shopsOn("富义街").ok().size)
                val again = m.store.sync(station.url, token, throwing, null)
                assertEquals(0uL, again.pushed)
            }
        }
    },
    "a listener that answers false stops the sync; the next sync finishes" to {
        Station().use { station ->
            phone().use { m ->
                val token = m.enroll(station.url, station.code, "手机").ok().token
                val stop = object : ProgressListener {
                    override fun onProgress(phase: Phase, done: ULong, total: ULong) = false
                }
                assertFailsWith<MenqianException.Cancelled> { m.store.sync(station.url, token, stop, null) }
                val done = assertIs<SyncState.Done>(m.sync(station.url, token).toList().last())
                assertTrue(done.summary.pulled > 0u)
                assertEquals(120, m.shopsOn("富义街").ok().size)
            }
        }
    },
    "a failed item is due for re-check on today's plan, and the ledger shows it overdue" to {
        seeded().use { m ->
            val shop = m.shopsOn("富义街").ok().first { it.open }
            val threeDaysAgo = DAY - 3 * 86_400_000L
            val id = m.startInspection(shop.id, "beijing-1v5", "officer-1", threeDaysAgo, null).ok()
            for (line in m.inspection(id).ok().lines) {
                // 责任书 (BJ-01) needs no photo: fail it, pass the rest.
                m.record(id, line.code, if (line.code == "BJ-01") Outcome.FAIL else Outcome.PASS).ok()
            }
            m.submit(id, threeDaysAgo + 60_000).ok()
            val ledger = m.rectifications(shop.id, DAY).ok()
            assertEquals(1, ledger.size)
            assertEquals("整改中", ledger[0].state) // 责任书: seven days
            val late = m.rectifications(null, DAY + 8 * 86_400_000L).ok()
            assertEquals("已逾期", late.single().state)
            val plan = m.todayPlan("右安门街道", shop.lat, shop.lon, DAY + 8 * 86_400_000L).ok()
            assertTrue(plan.stops.any { it.shopId == shop.id && it.reason == "整改复查" })
            assertTrue(plan.stops.size <= 30 && plan.leftForLater > 0u)
            val standing = m.standing(shop.id, DAY).ok()
            assertTrue(standing.grade in listOf("A", "B", "C", "D") && standing.stars in 1u..5u)
            assertEquals(1u, standing.openItems)
        }
    },
    "the case workflow refuses a move the role may not make" to {
        seeded().use { m ->
            val case = m.report(
                CaseReport(ReportSource.STEWARD, "0504", 39.8661, 116.3451, null, emptyList(), "水果摊占道", "steward-1", DAY),
            ).ok()
            val close = CaseMoveInput(CaseState.CLOSED, "steward-1", "steward", DAY + 1, null, null, null)
            m.moveCase(case, close).problem<Problem.NotAllowed>()
            val accept = CaseMoveInput(CaseState.ACCEPTED, "supervisor-1", "supervisor", DAY + 2, "已受理", null, null)
            m.moveCase(case, accept).ok()
            val dispatch = CaseMoveInput(CaseState.DISPATCHED, "supervisor-1", "supervisor", DAY + 3, null, "zhifa", WhistleKind.URGENT)
            m.moveCase(case, dispatch).ok()
            assertEquals(CaseState.DISPATCHED, m.cases().ok().single().status)
        }
    },
    "HTTPS with a private CA: enroll through the pinned link; another station's certificate is refused and loses nothing" to {
        Station(tls = true).use { station ->
            Station(tls = true).use { impostor ->
                phone().use { m ->
                    assertTrue(station.link.startsWith("https://127.0.0.1:${station.port}/enroll?code=${station.code}&ca="))
                    // Typed without the pin, the private CA is unknown: refused, typed.
                    m.enroll(station.url, station.code, "测试手机").problem<Problem.Untrusted>()
                    // A link whose pin is another CA's: refused before anything is sent.
                    val foreignPin = impostor.link.substringAfter("&ca=")
                    m.enrollLink(station.link.substringBefore("&ca=") + "&ca=" + foreignPin, "测试手机")
                        .problem<Problem.Untrusted>()
                    val enrolled = m.enrollLink(station.link, "测试手机").ok()
                    assertEquals(station.url, enrolled.serverUrl)
                    assertIs<SyncState.Done>(m.sync(enrolled.serverUrl, enrolled.token).toList().last())
                    assertEquals(120, m.shopsOn("富义街").ok().size)
                    // Work offline; then a station with another CA's certificate
                    // (a wrong address, or someone in between) is refused at once.
                    val patrol = m.startPatrol("officer-1", DAY).ok()
                    m.stopPatrol(patrol, DAY + 60_000).ok()
                    val pending = m.pendingChanges().ok()
                    assertTrue(pending > 0)
                    val refused = assertIs<SyncState.Failed>(m.sync(impostor.url, enrolled.token).toList().last())
                    val untrusted = assertIs<Problem.Untrusted>(refused.problem)
                    assertTrue(untrusted.text.startsWith("服务器证书不可信"), untrusted.text)
                    assertEquals(pending, m.pendingChanges().ok())
                    // The real station takes it all.
                    assertIs<SyncState.Done>(m.sync(enrolled.serverUrl, enrolled.token).toList().last())
                    assertEquals(0L, m.pendingChanges().ok())
                }
            }
        }
    },
    "the patrol recorder stores every fix before it stops, and a restart continues the open patrol" to {
        seeded().use { m ->
            coroutineScope {
                val recorder = PatrolRecorder(m, this, batchSize = 10)
                val id = recorder.start("officer-1", DAY).ok()
                // The phone's first fix is often a cached one from before the
                // start: it is dropped, and the batch around it stored.
                recorder.add(TrackFix(39.8661, 116.3451, 5.0, DAY - 60_000L))
                // 25 fixes from the location callback, then stop at once: the
                // ones still buffered must be stored before the patrol ends.
                for (i in 0 until 25) recorder.add(TrackFix(39.8661 + i * 1e-5, 116.3451, 5.0, DAY + i * 1_000L))
                recorder.stop(DAY + 30_000).ok()
                assertEquals(null, recorder.patrolId)
                assertEquals(25uL, m.patrolSummary(id).ok().recorded)
                m.appendTrack(id, listOf(TrackFix(39.8661, 116.3451, 5.0, DAY + 31_000))).problem<Problem.NotAllowed>()

                // The app is killed mid-patrol; Android restarts the service with a new recorder.
                val first = PatrolRecorder(m, this)
                val open = first.start("officer-1", DAY + 60_000).ok()
                for (i in 0 until 10) first.add(TrackFix(39.8661, 116.3451 + i * 1e-5, 5.0, DAY + 61_000L + i * 1_000L))
                // A full batch is stored on its own, before any stop.
                val deadline = System.nanoTime() + 10_000_000_000L
                while (m.patrolSummary(open).ok().recorded < 10uL) {
                    if (System.nanoTime() > deadline) fail("the full batch was not stored")
                    kotlinx.coroutines.delay(10)
                }
                val restarted = PatrolRecorder(m, this)
                assertEquals(open, restarted.start("officer-1", DAY + 120_000).ok())
                for (i in 0 until 3) restarted.add(TrackFix(39.8662, 116.3452, 5.0, DAY + 121_000L + i * 1_000L))
                restarted.stop(DAY + 130_000).ok()
                assertEquals(13uL, m.patrolSummary(open).ok().recorded)
                // Stopping twice, or with nothing open, is harmless.
                restarted.stop(DAY + 140_000).ok()
                coroutineContext.cancelChildren()
            }
        }
    },
    "the scanner keeps going after a refused code, and stops at a signboard" to {
        seeded().use { m ->
            var now = 0L
            val gate = ScanGate(quietMs = 3_000, clock = { now }) { m.scan(it) }
            val payment = "https://qr.alipay.com/fkx12345"
            assertIs<Problem.BadQrCode>(assertIs<ScanOutcome.Refused>(gate.offer(payment)).problem)
            // The same code still in view is not reported again every frame…
            now += 500
            assertEquals(ScanOutcome.Ignored, gate.offer(payment))
            // …but the officer can aim at the right board at once.
            val shop = m.shopsOn("富义街").ok().first()
            val opened = assertIs<ScanOutcome.Accepted<*>>(gate.offer("https://$HOST/s/${shop.code}"))
            assertEquals(shop.id, assertIs<cn.menqian.core.ShopView>(opened.value).id)
            assertEquals(ScanOutcome.Ignored, gate.offer("https://$HOST/s/${shop.code}"))
            gate.reset()
            now += 5_000
            assertIs<ScanOutcome.Refused>(gate.offer(payment))
        }
    },
    "offline and cancelled syncs are typed and lose nothing" to {
        seeded().use { m ->
            val patrol = m.startPatrol("officer-1", DAY).ok()
            val dead = "http://127.0.0.1:${ServerSocket(0).use { it.localPort }}"
            val cancel = CancelHandle()
            cancel.cancel()
            assertFailsWith<MenqianException.Cancelled> { m.store.sync(dead, "t", null, cancel) }
            val pending = m.pendingChanges().ok()
            assertTrue(pending > 0)
            assertFailsWith<MenqianException.Offline> { m.store.sync(dead, "t", null, null) }
            assertEquals(pending, m.pendingChanges().ok())
            m.stopPatrol(patrol, DAY + 1).ok()
        }
    },
)

fun main() {
    val failed = runBlocking {
        var failed = 0
        for ((name, test) in tests) {
            try {
                test()
                println("PASS  $name")
            } catch (t: Throwable) {
                failed++
                println("FAIL  $name\n      $t")
                t.printStackTrace()
            }
        }
        failed
    }
    println("${tests.size - failed} passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
