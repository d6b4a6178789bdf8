//! The WebChat page in headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, which `scripts/test` installs): type a message, press Send, and see the
//! tool calls and the reply rendered. The WebDriver client is the few W3C calls this needs,
//! made with reqwest.
//!
//! Skipped with a printed reason when chromedriver is absent, unless
//! `CLAWGATE_REQUIRE_BROWSER=1` (set by `scripts/test` once the install succeeded).

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stack::{spawn_stack, write_then_list, KillOnDrop, StackOptions};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C key under which an element reference travels.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One WebDriver session.
struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: KillOnDrop,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
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

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if !body.is_null() {
            request = request.json(&body);
        }
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        response["value"].clone()
    }

    async fn goto(&self, url: &str) {
        let answer = self
            .call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
        assert!(answer.is_null(), "navigation to {url} failed: {answer}");
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
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

    async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for element in self.find_all(css).await {
            let text = self
                .call(
                    reqwest::Method::GET,
                    &format!("/element/{element}/text"),
                    Value::Null,
                )
                .await;
            out.push(text.as_str().unwrap_or("").to_string());
        }
        out
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find_all(css).await.remove(0);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn click(&self, css: &str) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webchat_page_sends_a_message_and_renders_the_tool_calls_and_the_reply() {
    if !std::path::Path::new(CHROMEDRIVER).exists() {
        if std::env::var("CLAWGATE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("CLAWGATE_REQUIRE_BROWSER=1 but {CHROMEDRIVER} is missing");
        }
        eprintln!("skipped: {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver; scripts/test does)");
        return;
    }
    if !common::docker_available() {
        eprintln!("skipped: no Docker daemon");
        return;
    }
    let stack = spawn_stack(write_then_list(), StackOptions::default()).await;
    let browser = Browser::start().await;

    browser.goto(&stack.page_url()).await;
    browser.type_into("#input", "make a todo file").await;
    browser.click("#send").await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let replies = loop {
        let replies = browser.texts(".msg.reply").await;
        if !replies.is_empty() || Instant::now() > deadline {
            break replies;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let users = browser.texts(".msg.user").await;
    let tool_calls = browser.texts(".msg.tool-call").await;
    let tool_results = browser.texts(".msg.tool-result").await;

    assert_eq!(replies, ["Files: todo.txt"], "log:\n{}", stack.log_text());
    assert_eq!(users, ["make a todo file"]);
    assert_eq!(tool_calls.len(), 2, "{tool_calls:?}");
    assert!(tool_calls[0].contains("write") && tool_calls[0].contains("notes/todo.txt"));
    assert!(tool_calls[1].contains("exec") && tool_calls[1].contains("ls notes"));
    assert!(tool_results[1].contains("todo.txt"), "{tool_results:?}");
}
