//! `cargo run -p uniffi-bindgen -- generate <libmenqian.so> --language kotlin …`
//! (see bindings/generate.sh).

fn main() {
    uniffi::uniffi_bindgen_main()
}
