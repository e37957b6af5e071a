//! Many phones pushing at once, as the `sync` and `city` benchmarks send
//! them.

use std::time::{Duration, Instant};

use menqian_core::wire;

/// One phone's push: the instance it reaches, its token, the encoded batch.
pub struct Push {
    pub url: String,
    pub token: String,
    pub body: Vec<u8>,
}

/// Sends every push at once and waits for all of their answers; a `503`,
/// `429` or network error is tried again after 200 ms, as a phone does (a
/// push retried is applied once). Each push's latency from its first try,
/// and how many tries again there were in all.
pub fn push_all(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    pushes: Vec<Push>,
) -> (Vec<Duration>, u32) {
    runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        let count = pushes.len();
        for push in pushes {
            let client = client.clone();
            set.spawn(async move {
                let started = Instant::now();
                let mut retries = 0u32;
                loop {
                    let r = client
                        .post(format!("{}/v1/push", push.url))
                        .bearer_auth(&push.token)
                        .header("content-type", wire::CONTENT_TYPE)
                        .body(push.body.clone())
                        .send()
                        .await;
                    let Ok(r) = r else {
                        retries += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    let status = r.status();
                    let text = r.bytes().await.unwrap();
                    if status.as_u16() == 503 || status.as_u16() == 429 {
                        retries += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    assert!(
                        status.is_success(),
                        "push: {status} {:?}",
                        String::from_utf8_lossy(&text)
                    );
                    return (started.elapsed(), retries);
                }
            });
        }
        let mut latencies = Vec::with_capacity(count);
        let mut retries = 0;
        while let Some(answered) = set.join_next().await {
            let (latency, r) = answered.unwrap();
            latencies.push(latency);
            retries += r;
        }
        (latencies, retries)
    })
}

/// A client for `push_all` that keeps a connection per phone of a burst.
pub fn client(burst: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(burst)
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The runtime `push_all` sends on: two threads, as many as the cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The `q` quantile of sorted latencies.
pub fn pct(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}
