//! A WebDriver client for the browser tests: the few W3C calls they need, made with reqwest
//! against Debian's `chromedriver` driving headless `chromium` (`scripts/test` installs both).
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::stack::KillOnDrop;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C key under which an element reference travels.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One WebDriver session.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: KillOnDrop,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = KillOnDrop(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        // Flags from the machine notes: no sandbox as root, and no background networking,
        // whose connections this offline machine refuses.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Browser {
            http,
            session: format!("{base}/session/{session}"),
            _driver: driver,
            _profile: profile,
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if !body.is_null() {
            request = request.json(&body);
        }
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        response["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        let answer = self
            .call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
        assert!(answer.is_null(), "navigation to {url} failed: {answer}");
    }

    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let found = self
            .call(
                reqwest::Method::POST,
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        assert!(found.is_array(), "finding {css} failed: {found}");
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_string))
            .collect()
    }

    /// The rendered text of every element `css` matches, in one round trip.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let texts = self
            .call(
                reqwest::Method::POST,
                "/execute/sync",
                json!({ "script": "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText.trim())", "args": [css] }),
            )
            .await;
        texts
            .as_array()
            .unwrap_or_else(|| panic!("reading {css} failed: {texts}"))
            .iter()
            .map(|t| t.as_str().unwrap_or("").to_string())
            .collect()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find_all(css).await.remove(0);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let element = self.find_all(css).await.remove(0);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Close the session so Chromium exits; chromedriver is killed after.
        let url = self.session.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let _ = rt.block_on(reqwest::Client::new().delete(url).send());
        })
        .join();
    }
}

impl Browser {
    /// Reloads the page, as the browser's reload button does.
    pub async fn reload(&self) {
        let answer = self
            .call(reqwest::Method::POST, "/refresh", json!({}))
            .await;
        assert!(answer.is_null(), "reload failed: {answer}");
    }

    /// Runs `script` in the page (its `arguments` are `args`) and returns its value.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Waits until `css` matches at least `n` elements, up to `within`; returns their texts.
    pub async fn wait_for_texts(&self, css: &str, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let texts = self.texts(css).await;
            if texts.len() >= n || Instant::now() > deadline {
                return texts;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until `css` matches exactly `n` elements, up to `within`; returns their texts.
    pub async fn wait_for_exactly(&self, css: &str, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let texts = self.texts(css).await;
            if texts.len() == n || Instant::now() > deadline {
                return texts;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A PNG of the viewport, kept as a test artifact at `target/test-artifacts/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        use base64::Engine;
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a screenshot"))
            .expect("base64");
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// A browser, or `None` (with the reason printed) when chromedriver is absent and the suite
/// does not demand it (`CLAWGATE_REQUIRE_BROWSER=1`, set by `scripts/test`).
pub async fn browser_or_skip() -> Option<Browser> {
    if !std::path::Path::new(CHROMEDRIVER).exists() {
        if std::env::var("CLAWGATE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("CLAWGATE_REQUIRE_BROWSER=1 but {CHROMEDRIVER} is missing");
        }
        eprintln!("skipped: {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver; scripts/test does)");
        return None;
    }
    Some(Browser::start().await)
}
