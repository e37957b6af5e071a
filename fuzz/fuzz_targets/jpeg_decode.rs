//! A stranger's photo (a citizen's report, a camera's snapshot) through our
//! own JPEG decoder at the scales the pipeline uses: it must answer, refuse
//! or leave the file to libjpeg-turbo, never panic, hang or read out of
//! bounds. The pixel limit is low so that each run is quick.
#![no_main]

use libfuzzer_sys::fuzz_target;
use menqian_core::evidence::jpeg;

fuzz_target!(|data: &[u8]| {
    for n in [1, 3, 8] {
        if let Ok(Some(rgb)) = jpeg::decode_scaled(data, n, 1 << 20) {
            assert!(!rgb.is_empty());
        }
    }
    let _ = jpeg::decode_to(data, 3, 1 << 20, Some((40, 30)));
});
