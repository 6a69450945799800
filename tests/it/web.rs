//! The web page in a real headless Chromium, driven over the DevTools protocol: the DAG list,
//! a trigger with a conf, the grid until the run succeeds, a task's log, the model page and a
//! rollback through its confirmation — checked against the API and the registry after each
//! step, with screenshots saved under `target/tmp/web-screenshots/`.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it and sets `VIGIL_TEST_BROWSER=required`, so
//! CI fails rather than skips); elsewhere the test says it was skipped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

use crate::api::{api_of, http};
use crate::util::Project;

const TOKEN: &str = "web-test-token-0123456789";

fn chromium() -> Option<PathBuf> {
    let found = [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("VIGIL_TEST_BROWSER").as_deref() != Ok("required"),
            "VIGIL_TEST_BROWSER=required but no Chromium is installed (apt-get install chromium)"
        );
        eprintln!("skipped: no Chromium on this machine (apt-get install chromium)");
    }
    found
}

/// The browser, the tab, and the folder screenshots go to.
struct Page {
    _browser: Browser,
    tab: Arc<Tab>,
    shots: PathBuf,
    base: String,
}

impl Page {
    fn open(path: &std::path::Path, base: String) -> Page {
        let browser = Browser::new(LaunchOptions {
            headless: true,
            // The tests run as root in a container, where Chromium's sandbox cannot start.
            sandbox: false,
            path: Some(path.to_path_buf()),
            window_size: Some((1280, 900)),
            idle_browser_timeout: Duration::from_secs(120),
            ..LaunchOptions::default()
        })
        .expect("start headless Chromium");
        let tab = browser.new_tab().expect("open a tab");
        // A liveness bound for each wait, not a speed assertion.
        tab.set_default_timeout(Duration::from_secs(60));
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        Page {
            _browser: browser,
            tab,
            shots,
            base,
        }
    }

    /// Opens the page at `hash`: loads it the first time, then moves within it as a click on a
    /// link would (a hash change is no load the browser reports).
    fn go(&self, hash: &str) {
        if self.eval("location.origin") == Value::String(self.base.clone()) {
            self.eval(&format!(
                "location.hash = {}",
                Value::String(hash.to_string())
            ));
            return;
        }
        self.tab
            .navigate_to(&format!("{}/{hash}", self.base))
            .and_then(|t| t.wait_until_navigated())
            .unwrap_or_else(|e| panic!("open {hash}: {e}"));
    }

    /// Waits for `selector`, failing with what the page shows instead.
    fn wait(&self, selector: &str) -> headless_chrome::Element<'_> {
        self.tab.wait_for_element(selector).unwrap_or_else(|e| {
            panic!(
                "`{selector}` never appeared ({e}); the page shows:\n{}",
                self.text()
            )
        })
    }

    /// The value of a JavaScript expression, as JSON (arrays and objects included).
    fn eval(&self, js: &str) -> Value {
        let text = self
            .tab
            .evaluate(&format!("JSON.stringify(({js}) ?? null)"), false)
            .unwrap_or_else(|e| panic!("evaluate `{js}`: {e}"))
            .value;
        text.as_ref()
            .and_then(Value::as_str)
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    }

    /// What the page shows: <main>, and an open dialog.
    fn text(&self) -> String {
        self.eval("document.querySelector('main').innerText + ((document.querySelector('dialog[open]') || {}).innerText || '') + '\\nstatus: ' + document.getElementById('status').textContent")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Polls `js` until it is true.
    fn until(&self, what: &str, js: &str) {
        let start = std::time::Instant::now();
        while self.eval(js) != Value::Bool(true) {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "timed out waiting for {what}; the page shows:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn click(&self, selector: &str) {
        self.wait(selector)
            .click()
            .unwrap_or_else(|e| panic!("click `{selector}`: {e}"));
    }

    fn shot(&self, name: &str) -> PathBuf {
        let png = self
            .tab
            .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
            .expect("screenshot");
        assert!(png.len() > 1000, "an empty screenshot");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("save screenshot");
        path
    }

    /// Basic accessibility of what is on screen: every field has a label and every control a
    /// name; the page fits the viewport's width (wide tables scroll inside their box).
    fn accessible(&self, page: &str) {
        let unlabelled = self.eval(
            "[...document.querySelectorAll('input, textarea, select')].filter(e => e.type !== 'hidden' && e.offsetParent && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.outerHTML)",
        );
        assert_eq!(
            unlabelled,
            Value::Array(vec![]),
            "fields without a label on {page}"
        );
        let unnamed = self.eval(
            "[...document.querySelectorAll('button, a[href]')].filter(e => e.offsetParent && !(e.innerText || '').trim() && !e.getAttribute('aria-label')).map(e => e.outerHTML)",
        );
        assert_eq!(
            unnamed,
            Value::Array(vec![]),
            "controls without a name on {page}"
        );
        let overflow = self.eval("document.documentElement.scrollWidth - window.innerWidth");
        assert!(
            overflow.as_i64().unwrap_or(1) <= 0,
            "{page} is wider than the window by {overflow} px"
        );
    }

    fn viewport(&self, width: u32, height: u32, mobile: bool) {
        use headless_chrome::protocol::cdp::Emulation;
        self.tab
            .call_method(Emulation::SetDeviceMetricsOverride {
                width,
                height,
                device_scale_factor: 1.0,
                mobile,
                scale: None,
                screen_width: None,
                screen_height: None,
                position_x: None,
                position_y: None,
                dont_set_visible_size: None,
                screen_orientation: None,
                viewport: None,
                display_feature: None,
                device_posture: None,
            })
            .expect("set the viewport");
    }
}

fn project() -> Project {
    let p = Project::with_api_token(TOKEN);
    p.write(
        "dags/hello.toml",
        "description = \"Greets someone\"\n[params]\nname = \"world\"\n\n[tasks.greet]\ntype = \"command\"\n[tasks.greet.config]\nshell = true\ncommand = \"echo hello {{ params.name }} >&2; echo '{\\\"greeted\\\": \\\"{{ params.name }}\\\"}'\"\n\n[tasks.after]\ntype = \"noop\"\ndepends_on = [\"greet\"]\n",
    );
    p.write("dags/broken.toml", "[tasks.a]\ntype = \"no_such_type\"\n");
    p
}

#[test]
fn the_web_page_triggers_follows_a_run_and_rolls_a_model_back() {
    let Some(chromium) = chromium() else {
        return;
    };
    let p = project();
    // The demo model: four versions, production v3 rolled back to v2 by its monitoring DAG, so
    // the page has verdicts, deployment events and a version to roll back to (v3).
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/dags");
    p.vigil(&["demo", "--dags", shipped]).expect(0);
    // A small rollback-risk model, for the risk page.
    p.vigil(&["risk", "simulate", "--rows", "300", "--out", "data/risk"])
        .expect(0);
    p.vigil(&[
        "risk", "train", "--folds", "2", "--grid", "trees=10", "--grid", "depth=4",
    ])
    .expect(0);
    let d = p.daemon(&[]);
    let api = api_of(&d);
    let page = Page::open(&chromium, format!("http://{api}"));

    // The DAG list: the good DAG with its controls, the broken file with its error.
    page.go("#/");
    page.wait("#dag-table tr[data-dag=hello] button.trigger");
    let broken = page
        .wait("#broken-files")
        .get_inner_text()
        .unwrap_or_default();
    assert!(
        broken.contains("broken.toml") && broken.contains("no_such_type"),
        "{broken}"
    );
    page.accessible("the DAG list");
    page.shot("01-dag-list");

    // The token, given once through its dialog, then the trigger form from the keyboard.
    page.click("#token-button");
    page.wait("#token-input")
        .type_into(TOKEN)
        .expect("type the token");
    page.click("#token-save");
    page.until(
        "the token dialog to close",
        "!document.querySelector('#token-dialog').open",
    );
    page.eval("document.querySelector('tr[data-dag=hello] button.trigger').focus()");
    page.tab.press_key("Enter").expect("press Enter");
    page.wait("#trigger-dialog[open] #trigger-conf");
    let prefilled = page.eval("JSON.parse(document.querySelector('#trigger-conf').value)");
    assert_eq!(
        prefilled,
        serde_json::json!({"name": "world"}),
        "the form starts from the DAG's params"
    );
    page.accessible("the trigger form");
    page.eval("document.querySelector('#trigger-conf').value = '{\"name\": \"browser\"}'");
    page.shot("02-trigger-form");
    page.click("#trigger-submit");

    // The DAG's grid shows the run until it succeeds; the API agrees on its conf.
    page.until("the DAG page", "location.hash === '#/dags/hello'");
    page.until(
        "the grid to show the run succeed",
        "!!document.querySelector('#grid .runbar[data-state=success]')",
    );
    let (_, runs) = http(&api, "GET", "/api/v1/runs?dag_id=hello", None, &[], None);
    let run = &runs["runs"][0];
    assert_eq!(
        run["conf"],
        serde_json::json!({"name": "browser"}),
        "{runs}"
    );
    assert_eq!(run["state"], "success");
    let run_id = run["id"].as_i64().unwrap();
    page.until(
        "the graph to colour the tasks by the run",
        "document.querySelectorAll('#graph g.node[data-state=success]').length === 2",
    );
    page.accessible("the DAG page");
    page.shot("03-dag-grid-and-graph");

    // A task's log and result, one click from the grid.
    page.click(&format!("#grid a[href='#/runs/{run_id}/greet']"));
    page.until(
        "the log of greet",
        "(document.querySelector('#log') || {}).innerText?.includes('hello browser') === true",
    );
    page.until(
        "the log to be complete",
        "(document.querySelector('#log-state') || {}).innerText?.includes('over') === true",
    );
    page.until(
        "the result",
        "(document.querySelector('#result') || {}).innerText?.includes('\"greeted\": \"browser\"') === true",
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#task-table tr[data-state=success]').length"),
        serde_json::json!(2)
    );
    page.accessible("the run page");
    page.shot("04-run-and-log");

    // The model page, and a rollback through a confirmation that names the target.
    page.go("#/models/demo_churn");
    page.wait("#versions");
    // The demo's first check was held back, its second rolled back: both read in the table.
    let verdicts = page.wait("#verdicts").get_inner_text().unwrap_or_default();
    assert!(
        verdicts.contains("not yet established") && verdicts.contains("\testablished"),
        "{verdicts}"
    );
    page.wait("#metric-chart");
    assert_eq!(
        page.wait("#production code")
            .get_inner_text()
            .unwrap_or_default(),
        "v2"
    );
    page.accessible("the model page");
    page.shot("05-model");
    // The guard refuses v3 (it is DEGRADED against v2) and the confirmation says so.
    page.click("#rollback");
    let target = page
        .wait("#rollback-dialog[open] #rollback-target")
        .get_inner_text()
        .unwrap_or_default();
    assert_eq!(
        target, "v3",
        "the confirmation names the version it restores"
    );
    page.wait("#rollback-reason")
        .type_into("trying v3 again")
        .expect("type the reason");
    page.shot("06-rollback-confirmation");
    page.click("#rollback-confirm");
    page.until(
        "the refusal in the confirmation",
        "(document.querySelector('#rollback-dialog[open] [role=alert]') || {}).innerText?.includes('worse than production') === true",
    );
    page.shot("07-rollback-refused");
    page.click("#rollback-dialog button.quiet");
    let status = p
        .vigil(&["model", "status", "demo_churn", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        status["production"]["version"], "v2",
        "a refused rollback changes nothing"
    );

    // A new version goes out (from the CLI); the page offers to roll it back to v2, and does.
    p.vigil(&[
        "model",
        "register",
        "demo_churn",
        "--version",
        "v5",
        "--metric",
        "rmse=0.93",
    ])
    .expect(0);
    p.vigil(&[
        "model",
        "promote",
        "demo_churn",
        "v5",
        "--reason",
        "retrained",
    ])
    .expect(0);
    page.until(
        "the page to offer v2",
        "(document.querySelector('#rollback') || {}).innerText === 'Roll back to v2'",
    );
    page.click("#rollback");
    let target = page
        .wait("#rollback-dialog[open] #rollback-target")
        .get_inner_text()
        .unwrap_or_default();
    assert_eq!(target, "v2");
    page.wait("#rollback-reason")
        .type_into("v5 misbehaves; back to v2 from the browser")
        .expect("type the reason");
    page.click("#rollback-confirm");
    page.until(
        "the page to show v2 in production",
        "(document.querySelector('#production code') || {}).innerText === 'v2' && !document.querySelector('dialog[open]')",
    );
    let status = p
        .vigil(&["model", "status", "demo_churn", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["production"]["version"], "v2", "{status}");
    let (_, deployments) = http(
        &api,
        "GET",
        "/api/v1/models/demo_churn/deployments",
        None,
        &[],
        None,
    );
    assert_eq!(
        (
            &deployments[0]["from_version"],
            &deployments[0]["to_version"]
        ),
        (&serde_json::json!("v5"), &serde_json::json!("v2"))
    );
    assert_eq!(
        deployments[0]["reason"],
        "v5 misbehaves; back to v2 from the browser"
    );
    page.shot("08-rolled-back");

    // The other pages draw.
    page.go("#/alerts");
    page.wait("#alerts");
    page.wait("#outbox");
    page.accessible("alerts and outbox");
    page.shot("09-alerts-outbox");
    // The risk page: hold-out metrics, both figures drawn, and candidates scored from the form.
    page.go("#/risk");
    page.wait("#holdout");
    page.until(
        "the figures to load",
        "[...document.querySelectorAll('.figures img')].every(i => i.complete && i.naturalWidth > 0)",
    );
    let candidates = std::fs::read_to_string(p.path().join("data/risk/new_deployments.csv"))
        .expect("the simulated candidates");
    page.eval(&format!(
        "document.querySelector('#score-csv').value = {}",
        Value::String(candidates)
    ));
    page.click("#score-submit");
    page.until(
        "the scored candidates",
        "document.querySelectorAll('#scored tbody tr').length === 10",
    );
    let risky = page.eval(
        "[...document.querySelectorAll('#scored tbody tr')].find(r => r.innerText.includes('new_risky'))?.innerText",
    );
    assert!(
        risky.as_str().unwrap_or("").contains("block"),
        "the riskiest candidate is blocked: {risky}"
    );
    page.accessible("the risk page");
    page.shot("12-risk");

    // At a phone's width the list and the run still fit, their tables scrolling in place.
    page.viewport(390, 844, true);
    page.go("#/");
    page.wait("#dag-table");
    page.accessible("the DAG list on a phone");
    page.shot("10-phone-dag-list");
    page.go(&format!("#/runs/{run_id}/greet"));
    page.wait("#log");
    page.accessible("the run page on a phone");
    page.shot("11-phone-run");
    drop(d);
}
