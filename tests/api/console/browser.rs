//! A headless Chromium driven through its chromedriver (WebDriver), and the few moves the
//! console's tests make with it: open a page, find an element by its `data-test` hook, type,
//! click, and wait for what the page shows.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// How long the page may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

pub struct Browser {
    pub client: Client,
    /// Stopped when the test ends (see `Drop`).
    driver: Child,
}

fn program(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

/// `[data-test="name"]`.
pub fn hook(name: &str) -> String {
    format!(r#"[data-test="{name}"]"#)
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session through it.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(program("CHROMEDRIVER", "/usr/bin/chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (apt-get install chromium chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": program("CHROMIUM", "/usr/bin/chromium"),
                // --no-sandbox: the tests may run as root, where Chromium's sandbox cannot.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) if tokio::time::Instant::now() > deadline => {
                    panic!("no browser session through chromedriver: {error}")
                }
                // chromedriver is still starting.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Self { client, driver }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("the page opens");
    }

    /// The element with the hook, once it is there.
    pub async fn find(&self, name: &str) -> Element {
        self.find_css(&hook(name)).await
    }

    pub async fn find_css(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
    }

    /// How many elements match now.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("a query")
            .len()
    }

    pub async fn click(&self, name: &str) {
        self.find(name)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("{name} cannot be clicked: {e}"));
    }

    pub async fn type_into(&self, name: &str, text: &str) {
        let field = self.find(name).await;
        field.clear().await.expect("cleared");
        field.send_keys(text).await.expect("typed");
    }

    /// Waits until every call the page made is answered.
    pub async fn settled(&self) {
        self.find_css(&format!("{}:not([aria-busy])", hook("main")))
            .await;
    }

    /// Waits until `css` matches an element (e.g. a hook with an attribute's value).
    pub async fn until(&self, css: &str) -> Element {
        self.find_css(css).await
    }

    /// Waits until the hook's text is `expected`.
    pub async fn until_text(&self, name: &str, expected: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let text = self.find(name).await.text().await.unwrap_or_default();
            if text.trim() == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} shows {text:?}, never {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn text(&self, name: &str) -> String {
        self.find(name).await.text().await.expect("its text")
    }

    pub async fn attr(&self, name: &str, attribute: &str) -> Option<String> {
        self.find(name)
            .await
            .attr(attribute)
            .await
            .expect("its attribute")
    }

    /// Saves a screenshot of the page as `<name>.png` in `$CONSOLE_SCREENSHOTS`, when set (how
    /// docs/console/ is made).
    pub async fn screenshot(&self, name: &str) {
        let Ok(folder) = std::env::var("CONSOLE_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = PathBuf::from(folder).join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    pub async fn close(self) {
        self.client.clone().close().await.expect("the session ends");
    }
}

impl Drop for Browser {
    /// Stops chromedriver, which takes its browser with it.
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
