//! Debian's Chromium, headless, behind its own chromedriver, with the few
//! steps the journeys need. Every wait has a deadline and, when it passes,
//! fails with what the page showed (and a screenshot beside the others).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const REQUIRED_ENV: &str = "LEADBRIDGE_TEST_BROWSER";
const WAIT: Duration = Duration::from_secs(30);
static NOTICE: Once = Once::new();

pub struct Browser {
    client: Option<Client>,
    driver: Child,
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `env` if set, else the Debian path, if the file is there.
fn program(env: &str, debian: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(debian));
    path.exists().then_some(path)
}

/// Where screenshots go: `docs/console/` with `UPDATE_SCREENSHOTS=1` (the
/// README shows those), else under the target directory.
fn screenshot_dir() -> PathBuf {
    let dir = if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// A fresh headless Chromium, or None (said on stderr) when it is not
    /// installed and the browser tests were not required.
    pub async fn start() -> Option<Self> {
        let (Some(driver), Some(chromium)) = (
            program("CHROMEDRIVER", "/usr/bin/chromedriver"),
            program("CHROMIUM", "/usr/bin/chromium"),
        ) else {
            if std::env::var(REQUIRED_ENV).as_deref() == Ok("required") {
                panic!(
                    "{REQUIRED_ENV}=required but chromium or chromedriver is missing: \
                     apt-get install chromium chromium-driver"
                );
            }
            NOTICE.call_once(|| {
                // Straight to the process's stderr: libtest captures eprintln!.
                let _ = writeln!(
                    std::io::stderr(),
                    "\nNOTE: the browser tests of the console did NOT run: Chromium is not installed.\n\
                     Install it with: apt-get install chromium chromium-driver (.ci/run does)\n"
                );
            });
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        while reqwest::get(format!("{base}/status")).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000",
                         "--lang=en-GB", "--no-first-run"],
            },
        });
        // chromedriver is on loopback: plain HTTP, no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&base)
            .await
            .expect("a Chromium session");
        Some(Self {
            client: Some(client),
            driver,
            shots: screenshot_dir(),
        })
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub async fn goto(&mut self, url: &str) {
        self.c().goto(url).await.unwrap();
    }

    pub async fn current_url(&self) -> String {
        self.c().current_url().await.unwrap().to_string()
    }

    pub async fn js(&self, script: &str) -> Value {
        self.c().execute(script, vec![]).await.unwrap()
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .c()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => self.fail(&format!("`{css}` did not appear: {e}")).await,
        }
    }

    /// Fails the test with the page's text and a screenshot.
    async fn fail(&self, why: &str) -> ! {
        let text = self
            .c()
            .execute("return document.body.innerText", vec![])
            .await
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        if let Ok(png) = self.c().screenshot().await {
            let _ = std::fs::write(self.shots.join("failure.png"), png);
        }
        panic!("{why}\n--- the page showed:\n{text}");
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).await.attr(name).await.unwrap()
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    pub async fn send_keys(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.unwrap();
    }

    /// Types into whatever has the keyboard focus.
    pub async fn type_into_focused(&self, text: &str) {
        let e = self.c().active_element().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap();
    }

    /// Waits until the element's text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(e) = self.c().find(Locator::Css(css)).await {
                if e.text().await.is_ok_and(|t| t.contains(needle)) {
                    return;
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!("`{css}` never showed {needle:?}")).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits, without touching the page, until the element's text is `expected`.
    pub async fn wait_exact(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(e) = self.c().find(Locator::Css(css)).await {
                if e.text().await.is_ok_and(|t| t == expected) {
                    return;
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!("`{css}` never read {expected:?}")).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element's text is `expected`, showing the page again
    /// (as its Refresh does) between looks, since the data changes behind it.
    pub async fn eventually_text(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(e) = self.c().find(Locator::Css(css)).await {
                if e.text().await.is_ok_and(|t| t == expected) {
                    return;
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!("`{css}` never read {expected:?}")).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.js("window.dispatchEvent(new HashChangeEvent('hashchange'))")
                .await;
        }
    }

    /// Waits until client `id`'s row on the clients page shows `state`.
    pub async fn wait_until_row_state(&self, id: &str, state: &str) {
        self.eventually_text(&format!("tr[data-client='{id}'] td.state"), state)
            .await;
    }

    /// Saves a screenshot of the whole page as `name.png` (the window is
    /// made as tall as the page for it, then put back).
    pub async fn shot(&self, name: &str) {
        // Whatever the page shows, no value came out as "null" or "undefined"
        // (JSON in <pre> and typed values aside).
        let stray = self
            .js("const m = document.querySelector('main').cloneNode(true);
                 m.querySelectorAll('pre, textarea, input').forEach(e => e.remove());
                 return (m.textContent.match(/null|undefined|NaN|\\[object Object\\]/) || [null])[0]")
            .await;
        assert_eq!(stray, Value::Null, "the {name} page shows a stray {stray}");
        let height = self
            .js("window.scrollTo(0, 0); return document.documentElement.scrollHeight")
            .await
            .as_u64()
            .unwrap_or(1000);
        let c = self.c();
        c.set_window_size(1280, (height as u32 + 140).clamp(1000, 5000))
            .await
            .unwrap();
        let png = c.screenshot().await.unwrap();
        c.set_window_size(1280, 1000).await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn close(&mut self) {
        if let Some(c) = self.client.take() {
            c.close().await.unwrap();
        }
    }
}
