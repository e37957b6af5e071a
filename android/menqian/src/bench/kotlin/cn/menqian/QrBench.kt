package cn.menqian

import cn.menqian.core.MenqianStore
import java.io.File
import java.nio.file.Files

/**
 * Kotlin call overhead of a QR lookup through the binding: the 2,000-shop
 * subdistrict in a store, then 200,000 `scan` calls from Kotlin, each timed.
 * Run by scripts/kotlin-bench.sh against the release-small library.
 */
fun main() {
    val repo = File(System.getProperty("menqian.repo") ?: ".")
    val dir = Files.createTempDirectory("menqian-bench").toFile()
    val store = MenqianStore.open(File(dir, "bench.sqlite").path, listOf("mq.fengtai.example.cn"))
    store.importRegistryJson(File(repo, "fixtures/data/subdistrict.json").readText(), null)
    val codes = store.searchShops("街", 2_000u).map { "https://mq.fengtai.example.cn/s/${it.code}" }
    repeat(20_000) { store.scan(codes[it % codes.size]) } // warm up the JIT
    val n = 200_000
    val times = LongArray(n)
    for (i in 0 until n) {
        val t = System.nanoTime()
        store.scan(codes[i % codes.size])
        times[i] = System.nanoTime() - t
    }
    times.sort()
    fun us(q: Double) = times[((n - 1) * q).toInt()] / 1000.0
    println("QR lookup through the Kotlin binding, ${codes.size} codes, $n calls: " +
        "p50 %.1f µs, p99 %.1f µs, max %.1f µs".format(us(0.5), us(0.99), us(1.0)))
    store.close()
}
