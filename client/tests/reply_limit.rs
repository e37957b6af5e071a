//! A station that answers a page with more bytes than a page may take is
//! refused, whether it declares the length or streams without one, and the
//! device reads no more than the limit.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use menqian_client::{CancelToken, SyncClient};
use menqian_core::error::Error;

/// A one-request server on 127.0.0.1 that answers 200 with `head` and then
/// streams zeros (counted in `sent`) until the client hangs up.
fn misbehaving_station(head: &'static str, sent: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let mut stream = stream;
        stream.write_all(head.as_bytes()).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let chunked = head.contains("chunked");
        loop {
            let wrote = if chunked {
                stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .and_then(|_| stream.write_all(&chunk))
                    .and_then(|_| stream.write_all(b"\r\n"))
            } else {
                stream.write_all(&chunk)
            };
            if wrote.is_err() {
                return;
            }
            sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if sent.load(Ordering::Relaxed) > 64 * 1024 * 1024 {
                return; // the client should have hung up long before
            }
        }
    });
    url
}

fn refused(url: &str, limit: u64) -> Error {
    let mut client = SyncClient::new(url, Some("token".into())).unwrap();
    client.max_reply_bytes = limit;
    client
        .snapshot(None, &CancelToken::default())
        .expect_err("an oversized reply must be refused")
}

#[test]
fn an_oversized_reply_is_refused_without_being_read() {
    // Declared (refused from the header) and streamed without a length
    // (read up to the limit, then refused): either way `Rejected`, with the
    // station's stream left near the limit.
    for framing in ["Content-Length: 10000000000", "Transfer-Encoding: chunked"] {
        let sent = Arc::new(AtomicU64::new(0));
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-menqian-changes\r\n{framing}\r\n\r\n"
        );
        let url = misbehaving_station(head.leak(), sent.clone());
        let e = refused(&url, 1024 * 1024);
        assert!(matches!(e, Error::Rejected { .. }), "{framing}: {e:?}");
        assert!(
            sent.load(Ordering::Relaxed) < 16 * 1024 * 1024,
            "{framing}: the client stopped reading near its limit"
        );
    }
}
