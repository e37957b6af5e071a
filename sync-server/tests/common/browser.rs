//! A headless Chromium (Debian's, with its chromedriver) driven over
//! WebDriver from synchronous test code: the console's browser tests and its
//! map benchmark.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};

/// A headless Chromium behind its own chromedriver, driven synchronously.
pub struct Browser {
    pub rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
    base: String,
}

impl Browser {
    pub fn start(base: &str) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian chromium-driver; scripts/system-deps.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let client = rt
            .block_on(
                fantoccini::ClientBuilder::rustls()
                    .unwrap()
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .unwrap();
        Browser {
            rt,
            client: Some(client),
            driver,
            _profile: profile,
            base: base.to_string(),
        }
    }

    pub fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub fn go(&self, path: &str) {
        self.rt
            .block_on(self.c().goto(&format!("{}{path}", self.base)))
            .unwrap();
    }

    pub fn path(&self) -> String {
        let url = self.rt.block_on(self.c().current_url()).unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    pub fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.rt
            .block_on(self.c().find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("{css}: {e}\n{}", self.source()))
    }

    pub fn count(&self, css: &str) -> usize {
        self.rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .unwrap()
            .len()
    }

    /// An element's text; found again if the page replaced it meanwhile (the
    /// overview swaps its figures in when the feed moves).
    pub fn text(&self, css: &str) -> String {
        for _ in 0..20 {
            if let Ok(text) = self.rt.block_on(self.find(css).text()) {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{css}: the element kept going stale")
    }

    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.rt.block_on(e.clear()).unwrap();
        self.rt.block_on(e.send_keys(text)).unwrap();
    }

    pub fn choose(&self, css: &str, value: &str) {
        let e = self.find(css);
        self.rt.block_on(e.select_by_value(value)).unwrap();
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.rt.block_on(e.click()).unwrap();
    }

    /// Clicks what loads a new page (a link, a form's button) and waits
    /// until the new page has loaded.
    pub fn open(&self, css: &str) {
        self.js("window.__menqianOld = true; return true");
        self.click(css);
        self.wait_until(
            "return window.__menqianOld === undefined && document.readyState === 'complete'",
            Duration::from_secs(20),
        );
    }

    pub fn source(&self) -> String {
        self.rt.block_on(self.c().source()).unwrap_or_default()
    }

    pub fn js(&self, script: &str) -> serde_json::Value {
        self.rt.block_on(self.c().execute(script, vec![])).unwrap()
    }

    /// Waits until `script` returns true.
    pub fn wait_until(&self, script: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.js(script) != serde_json::Value::Bool(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {script}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves the page as `target/screenshots/<name>.png`.
    pub fn shot(&self, name: &str) {
        let png = self.rt.block_on(self.c().screenshot()).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub fn sign_in(&self, user: &str, password: &str) {
        self.go("/console");
        assert_eq!(self.path(), "/console/login");
        self.fill("#user", user);
        self.fill("#password", password);
        self.open("form button[type=submit]");
        assert_eq!(self.path(), "/console", "{}", self.source());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
