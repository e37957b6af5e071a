//! What a camera reads: signboard QR payloads, typed codes and enrollment links.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let hosts = vec!["mq.fengtai.example.cn".to_string()];
    if let Ok(code) = menqian_core::qr::parse_payload(text, &hosts) {
        assert_eq!(menqian_core::ShopCode::parse(code.as_str()).ok(), Some(code.clone()));
        assert!(menqian_core::ids::check_doc_id(&format!("shop/{}", code.as_str())).is_ok());
    }
    let _ = menqian_core::ShopCode::parse(text);
    if let Ok(link) = menqian_core::EnrollmentLink::parse(text) {
        let again = menqian_core::EnrollmentLink::parse(&link.to_link());
        assert_eq!(again.ok(), Some(link));
    }
    let _ = menqian_core::ids::check_doc_id(text);
});
