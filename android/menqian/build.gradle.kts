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
}

val repo = rootDir.parentFile

// Kotlin from the host-built library (the generator reads its metadata).
val generateBindings by tasks.registering(Exec::class) {
    workingDir = repo
    commandLine("bash", "bindings/generate.sh")
}

// The phone libraries: `cargo install cargo-ndk` and
// `rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android`.
val cargoNdk by tasks.registering(Exec::class) {
    workingDir = repo
    commandLine(
        "cargo", "ndk",
        "-t", "arm64-v8a", "-t", "armeabi-v7a", "-t", "x86_64",
        "-o", "${projectDir}/build/jniLibs",
        "build", "-p", "menqian-bindings", "--profile", "release-small",
    )
}

tasks.named("preBuild") { dependsOn(generateBindings, cargoNdk) }
