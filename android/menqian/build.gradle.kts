// The Kotlin library module: the generated UniFFI bindings (bindings/generate.sh)
// and the idiomatic layer (suspend functions, Flow, sealed answers). The native
// library comes from cargo-ndk; the JVM tests run without Android
// (scripts/kotlin-test.sh).
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "cn.menqian"
    compileSdk = 35
    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
    sourceSets["main"].jniLibs.srcDir("build/jniLibs")
}

dependencies {
    implementation("net.java.dev.jna:jna:5.14.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
    // src/test runs on the desktop JVM (scripts/kotlin-test.sh runs it here).
    testImplementation(kotlin("test"))
    testImplementation("net.java.dev.jna:jna:5.14.0")
    testImplementation("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.9.0")
}

val repo = rootDir.parentFile

// Gradle (and Android Studio's daemon) does not read the shell's profile, so
// rustup's ~/.cargo/bin is often missing from its PATH: look there too, and
// say what to set when cargo is nowhere.
val cargoHome = System.getenv("CARGO_HOME") ?: "${System.getProperty("user.home")}/.cargo"
val cargoPath = listOf("$cargoHome/bin", System.getenv("PATH").orEmpty()).joinToString(File.pathSeparator)
fun requireCargo() {
    val found = cargoPath.split(File.pathSeparator).any { File(it, "cargo").canExecute() }
    if (!found) {
        throw GradleException(
            "cargo not found in $cargoHome/bin or on PATH: install Rust with rustup, or set " +
                "CARGO_HOME to the folder whose bin/ holds cargo, then restart Android Studio",
        )
    }
}

// Kotlin from the host-built library (the generator reads its metadata).
val generateBindings by tasks.registering(Exec::class) {
    workingDir = repo
    environment("PATH", cargoPath)
    environment("TURBOJPEG_SOURCE", "vendor")
    doFirst { requireCargo() }
    commandLine("bash", "bindings/generate.sh")
}

// The phone libraries: `cargo install cargo-ndk`,
// `rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android`,
// and CMake and NASM for libjpeg-turbo, built from turbojpeg-sys's vendored
// source (pkg-config cannot serve a cross build).
val cargoNdk by tasks.registering(Exec::class) {
    workingDir = repo
    environment("PATH", cargoPath)
    environment("TURBOJPEG_SOURCE", "vendor")
    doFirst { requireCargo() }
    commandLine(
        "cargo", "ndk",
        "-t", "arm64-v8a", "-t", "armeabi-v7a", "-t", "x86_64",
        "-o", "${projectDir}/build/jniLibs",
        "build", "-p", "menqian-bindings", "--profile", "release-small",
    )
}

tasks.named("preBuild") { dependsOn(generateBindings, cargoNdk) }
