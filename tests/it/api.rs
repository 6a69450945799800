//! The HTTP API through the real binary: every route, auth on and off, validation errors, the
//! idempotency key, paging, errors that show no path or SQL, the OpenAPI document against the
//! router, and `vigil api` serving the daemon's database on its own.

use std::collections::BTreeSet;
use std::io::{Read, Write};

use serde_json::{Value, json};

use crate::util::{DaemonProcess, Project, wait_for};

const TOKEN: &str = "test-token-0123456789abcdef";

/// `(status, body as JSON)` of one HTTP/1.1 request to `addr`.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let (head, rest) = raw(addr, method, path, token, headers, body);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = serde_json::from_str(&rest).unwrap_or(Value::String(rest));
    (status, json)
}

/// The head (status line and headers, lower-cased) and the body of one request.
fn raw(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the API");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        request.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, rest) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_lowercase(), rest.to_string())
}

/// Triggers a run of `dag` with no conf; its id.
pub fn trigger(api: &str, dag: &str) -> i64 {
    let (s, body) = http(
        api,
        "POST",
        &format!("/api/v1/dags/{dag}/runs"),
        Some(TOKEN),
        &[],
        None,
    );
    assert_eq!(s, 201, "{body}");
    body["run"]["id"].as_i64().expect("the run's id")
}

/// An open server-sent-event stream: its status and its body, read line by line.
fn open_stream(addr: &str, path: &str) -> (u16, std::io::BufReader<std::net::TcpStream>) {
    use std::io::BufRead;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the API");
    // A liveness bound: a stream that stops sending fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("read timeout");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut reader = std::io::BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    (status, reader)
}

/// Reads the stream's lines until one contains `want`, returning every line read.
fn read_until(reader: &mut std::io::BufReader<std::net::TcpStream>, want: &str) -> Vec<String> {
    use std::io::BufRead;
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => panic!("the stream ended before `{want}`: {seen:?}"),
            Ok(_) => {}
            Err(e) => panic!("reading the stream for `{want}`: {e}; read {seen:?}"),
        }
        let found = line.contains(want);
        seen.push(line.trim_end().to_string());
        if found {
            return seen;
        }
    }
}

/// The API address the daemon (or `vigil api`) logged at start.
pub fn address(logs: &str) -> Option<String> {
    let at = logs.find("API listening")?;
    let rest = &logs[at..];
    let start = rest.find("http://")? + "http://".len();
    let addr: String = rest[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"')
        .collect();
    Some(addr)
}

pub fn api_of(d: &DaemonProcess) -> String {
    wait_for("the API address in the log", || {
        address(&d.logs()).is_some()
    });
    address(&d.logs()).unwrap_or_default()
}

/// A project with a good DAG (`hello`, with a param), a broken file, and an API token file.
fn project(extra: &str) -> Project {
    let p = Project::new();
    p.write(
        "config/vigil.toml",
        &format!(
            "[daemon]\nheartbeat_interval = \"1s\"\nlease = \"3s\"\nshutdown_grace = \"1s\"\n\n[api]\ntoken_file = \"api.token\"\n{extra}"
        ),
    );
    p.write("api.token", &format!("{TOKEN}\n"));
    p.write(
        "dags/hello.toml",
        "[params]\nname = \"world\"\n\n[tasks.greet]\ntype = \"command\"\n[tasks.greet.config]\nshell = true\ncommand = \"echo hello {{ params.name }} >&2; echo '{\\\"greeted\\\": \\\"{{ params.name }}\\\"}'\"\n\n[tasks.after]\ntype = \"noop\"\ndepends_on = [\"greet\"]\n",
    );
    p.write("dags/broken.toml", "[tasks.a]\ntype = \"no_such_type\"\n");
    p
}

/// No error body names the project's directory or speaks SQL.
fn clean(p: &Project, body: &Value) {
    let text = body.to_string();
    let dir = p.path().display().to_string();
    assert!(!text.contains(&dir), "a path leaked: {text}");
    for word in ["SELECT", "INSERT", "sqlx", "sqlite"] {
        assert!(!text.contains(word), "`{word}` leaked: {text}");
    }
}

#[test]
fn every_route_answers_and_changes_need_the_token() {
    let p = project("");
    let d = p.daemon(&[]);
    let api = api_of(&d);
    let get = |path: &str| http(&api, "GET", path, None, &[], None);

    let (s, body) = get("/healthz");
    assert_eq!((s, &body["status"]), (200, &json!("ok")));
    let (s, body) = get("/readyz");
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["ready"], true);

    // DAGs: the good one with its schedule fields, the broken file's errors.
    let (s, body) = get("/api/v1/dags");
    assert_eq!(s, 200, "{body}");
    let ids: Vec<&str> = body["dags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, ["hello"]);
    assert!(body["dags"][0].get("next_run").is_some());
    assert!(
        body["errors"].to_string().contains("no_such_type"),
        "{body}"
    );
    let (s, body) = get("/api/v1/dags/hello");
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(body["edges"], json!([["greet", "after"]]));
    let (s, body) = get("/api/v1/dags/nope");
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("hello"),
        "{body}"
    );
    clean(&p, &body);

    // Triggering: no token, a wrong one, a conf that does not fit, then the right request.
    let trigger = |token: Option<&str>, headers: &[(&str, &str)], body: &str| {
        http(
            &api,
            "POST",
            "/api/v1/dags/hello/runs",
            token,
            headers,
            Some(body),
        )
    };
    let (s, body) = trigger(None, &[], "{}");
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (s, _) = trigger(Some("not-the-token-at-all-0000"), &[], "{}");
    assert_eq!(s, 401);
    let (s, body) = trigger(Some(TOKEN), &[], r#"{"conf": {"nmae": "x"}}"#);
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("nmae"),
        "{body}"
    );
    let (s, body) = trigger(Some(TOKEN), &[], "{not json");
    assert_eq!(s, 400, "{body}");
    clean(&p, &body);
    let key = [("Idempotency-Key", "order-42")];
    let (s, first) = trigger(Some(TOKEN), &key, r#"{"conf": {"name": "api"}}"#);
    assert_eq!(s, 201, "{first}");
    let run = first["run"]["id"].as_i64().unwrap();
    // A retried request with the same key: the same run, nothing new queued.
    let (s, again) = trigger(Some(TOKEN), &key, r#"{"conf": {"name": "api"}}"#);
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["run"]["id"].as_i64(), Some(run));
    assert_eq!(again["existing"], true);

    wait_for("the run to succeed", || {
        get(&format!("/api/v1/runs/{run}")).1["run"]["state"] == "success"
    });
    let (s, shown) = get(&format!("/api/v1/runs/{run}"));
    assert_eq!(s, 200);
    let tasks: Vec<&str> = shown["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["task_id"].as_str())
        .collect();
    assert_eq!(tasks, ["greet", "after"]);
    assert_eq!(shown["tasks"][0]["attempt"], 1);
    let (s, logs) = get(&format!("/api/v1/runs/{run}/tasks/greet/logs"));
    assert_eq!(s, 200, "{logs}");
    assert!(logs.to_string().contains("hello api"), "{logs}");
    let (s, result) = get(&format!("/api/v1/runs/{run}/tasks/greet/result"));
    assert_eq!(s, 200, "{result}");
    assert_eq!(result["value"]["greeted"], "api");
    let (s, result) = get(&format!("/api/v1/runs/{run}/tasks/greet/result?attempt=1"));
    assert_eq!((s, &result["value"]["greeted"]), (200, &json!("api")));
    let (s, body) = get(&format!("/api/v1/runs/{run}/tasks/nope/logs"));
    assert_eq!(s, 404, "{body}");
    let (s, body) = get("/api/v1/runs/999999");
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (s, body) = get("/api/v1/runs/abc");
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );

    // Paging: three runs, two per page, newest first, cursor to the rest.
    for date in ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"] {
        let (s, body) = trigger(
            Some(TOKEN),
            &[],
            &format!(r#"{{"logical_date": "{date}"}}"#),
        );
        assert_eq!(s, 201, "{body}");
    }
    let (s, page) = get("/api/v1/runs?dag_id=hello&limit=2");
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["runs"].as_array().unwrap().len(), 2);
    let next = page["next"].as_i64().expect("a next page");
    let (_, rest) = get(&format!("/api/v1/runs?dag_id=hello&limit=2&before={next}"));
    assert_eq!(rest["runs"].as_array().unwrap().len(), 1);
    assert!(rest["next"].is_null());
    let all: BTreeSet<i64> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["runs"].as_array().unwrap())
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(all.len(), 3);
    let (s, body) = get("/api/v1/runs?state=bogus");
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    let (s, body) = get("/api/v1/runs?limit=0");
    assert_eq!(s, 400, "{body}");
    let (s, body) = get("/api/v1/runs?what=1");
    assert_eq!(s, 400, "{body}");

    // Pause and unpause: token needed, state visible in the list.
    let (s, _) = http(&api, "POST", "/api/v1/dags/hello/pause", None, &[], None);
    assert_eq!(s, 401);
    let (s, body) = http(
        &api,
        "POST",
        "/api/v1/dags/hello/pause",
        Some(TOKEN),
        &[],
        None,
    );
    assert_eq!((s, &body["paused"]), (200, &json!(true)), "{body}");
    assert_eq!(get("/api/v1/dags").1["dags"][0]["paused"], true);
    let (s, body) = http(
        &api,
        "POST",
        "/api/v1/dags/hello/unpause",
        Some(TOKEN),
        &[],
        None,
    );
    assert_eq!((s, &body["paused"]), (200, &json!(false)), "{body}");
    let (s, body) = http(
        &api,
        "POST",
        "/api/v1/dags/nope/pause",
        Some(TOKEN),
        &[],
        None,
    );
    assert_eq!(s, 404, "{body}");
    clean(&p, &body);

    let (s, body) = get("/no/such/route");
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (s, doc) = get("/api/v1/openapi.json");
    assert_eq!(s, 200);
    assert!(
        doc["paths"]["/api/v1/dags/{dag_id}/runs"]["post"].is_object(),
        "{doc}"
    );
    assert!(!d.logs().contains(TOKEN), "the token was logged");
    assert_eq!(d.terminate(), 0);
}

#[test]
fn reads_need_the_token_when_configured_and_health_does_not() {
    let p = project("read_requires_token = true\n");
    let d = p.daemon(&[]);
    let api = api_of(&d);
    let (s, body) = http(&api, "GET", "/api/v1/dags", None, &[], None);
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (s, _) = http(&api, "GET", "/api/v1/dags", Some(TOKEN), &[], None);
    assert_eq!(s, 200);
    let (s, _) = http(&api, "GET", "/healthz", None, &[], None);
    assert_eq!(s, 200);
    // The page itself holds no data: it loads, then asks for the token the API wants.
    for path in ["/", "/ui/app.js", "/ui/app.css", "/ui/icon.svg"] {
        let (head, body) = raw(&api, "GET", path, None, &[], None);
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains("content-security-policy: default-src 'none'"),
            "{path}: {head}"
        );
        assert!(!body.is_empty(), "{path}");
    }
    // The run link in mail leads to the page's view of the run, relative to any path prefix.
    let (head, _) = raw(&api, "GET", "/dags/hello/runs/42", None, &[], None);
    assert!(head.starts_with("http/1.1 303"), "{head}");
    assert!(head.contains("location: ../../../#/runs/42"), "{head}");
    assert_eq!(d.terminate(), 0);
}

#[test]
fn a_dags_grid_has_its_runs_by_task_oldest_first() {
    let p = project("");
    let d = p.daemon(&[]);
    let api = api_of(&d);
    let (s, empty) = http(&api, "GET", "/api/v1/dags/hello/grid", None, &[], None);
    assert_eq!(s, 200, "{empty}");
    assert_eq!(empty["tasks"], json!(["greet", "after"]));
    assert_eq!(empty["runs"], json!([]));
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let (s, body) = http(
            &api,
            "POST",
            "/api/v1/dags/hello/runs",
            Some(TOKEN),
            &[],
            Some(&format!("{{\"conf\": {{\"name\": \"{name}\"}}}}")),
        );
        assert_eq!(s, 201, "{body}");
        ids.push(body["run"]["id"].as_i64().unwrap());
    }
    wait_for("the three runs to succeed", || {
        let (_, g) = http(&api, "GET", "/api/v1/dags/hello/grid", None, &[], None);
        g["runs"]
            .as_array()
            .is_some_and(|r| r.len() == 3 && r.iter().all(|c| c["run"]["state"] == "success"))
    });
    let (_, grid) = http(
        &api,
        "GET",
        "/api/v1/dags/hello/grid?limit=2",
        None,
        &[],
        None,
    );
    let columns: Vec<i64> = grid["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["run"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(columns, ids[1..], "the latest two, oldest first");
    let cells = &grid["runs"][1]["cells"];
    assert_eq!(cells[0]["state"], "success", "{grid}");
    assert_eq!(cells[1]["attempt"], 1, "{grid}");
    for bad in ["limit=0", "limit=101", "limit=x", "limits=3"] {
        let (s, body) = http(
            &api,
            "GET",
            &format!("/api/v1/dags/hello/grid?{bad}"),
            None,
            &[],
            None,
        );
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (400, Some("invalid")),
            "{bad}: {body}"
        );
        clean(&p, &body);
    }
    let (s, body) = http(&api, "GET", "/api/v1/dags/nope/grid", None, &[], None);
    assert_eq!(s, 404, "{body}");
    clean(&p, &body);
}

#[test]
fn an_address_others_can_reach_needs_a_token_and_a_taken_port_is_named() {
    let p = Project::new();
    p.write("dags/a.toml", "[tasks.a]\ntype = \"noop\"\n");
    p.write("config/vigil.toml", "[api]\nlisten = \"0.0.0.0:0\"\n");
    // Not `Project::vigil`, which points the API at a free loopback port: this is about the
    // config's address.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.current_dir(p.path())
        .arg("daemon")
        .env_remove("VIGIL_API_LISTEN")
        .env_remove("VIGIL_API_TOKEN");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("0.0.0.0:0") && stderr.contains("VIGIL_API_TOKEN"),
        "{stderr}"
    );
    assert!(!stderr.contains("daemon started"), "{stderr}");

    // A port another process holds: named, with what to do.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(p.path())
        .arg("daemon")
        .env("VIGIL_API_LISTEN", &port)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&port) && stderr.contains("VIGIL_API_LISTEN"),
        "{stderr}"
    );
}

#[test]
fn vigil_api_serves_the_daemons_database_on_its_own() {
    let p = project("");
    let d = p.daemon(&[]);
    let log = p.path().join("api.log");
    let mut api = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(p.path())
        .arg("api")
        .env("VIGIL_API_LISTEN", crate::util::FREE_PORT)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("vigil api to listen", || address(&logs()).is_some());
    let addr = address(&logs()).unwrap();
    let run = trigger(&addr, "hello");
    // The daemon, told through the database, runs it.
    wait_for("the daemon to run it", || {
        http(
            &addr,
            "GET",
            &format!("/api/v1/runs/{run}"),
            None,
            &[],
            None,
        )
        .1["run"]["state"]
            == "success"
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(api.id() as i32, libc::SIGTERM) };
    assert_eq!(api.wait().unwrap().code(), Some(0), "{}", logs());
    assert_eq!(d.terminate(), 0);
}

/// Every route the router declares (its `.route(` lines) is in the OpenAPI document, with its
/// methods.
#[test]
fn the_openapi_document_lists_every_route() {
    use utoipa::OpenApi;
    let doc = serde_json::to_value(vigil::api::ApiDoc::openapi()).unwrap();
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/mod.rs")).unwrap();
    let mut seen = 0;
    // Each `.route(...)` call, however rustfmt wrapped it.
    for call in source.split(".route(").skip(1) {
        let call = call.split(".route_layer(").next().unwrap_or(call);
        let call = call.split(".with_state(").next().unwrap_or(call);
        // Only calls that start with a path literal (not a mention in a comment).
        let Some(path) = call
            .trim_start()
            .strip_prefix('"')
            .and_then(|c| c.split('"').next())
        else {
            continue;
        };
        for method in ["get", "post", "put", "delete", "patch"] {
            if call.contains(&format!("{method}(")) {
                assert!(
                    doc["paths"][path][method].is_object(),
                    "{method} {path} is routed but not in /api/v1/openapi.json; add it to api/openapi.rs"
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 12, "only {seen} routes read from src/api/mod.rs");
}

/// `/metrics` parses as Prometheus text, follows its naming conventions, and counts what
/// happened: the run, its task instances, the attempts and their durations by task type.
#[test]
fn metrics_follow_prometheus_conventions_and_count_what_happened() {
    let p = project("");
    let d = p.daemon(&[]);
    let api = api_of(&d);
    let run = trigger(&api, "hello");
    wait_for("the run to succeed", || {
        http(&api, "GET", &format!("/api/v1/runs/{run}"), None, &[], None).1["run"]["state"]
            == "success"
    });
    let scrape = |api: &str| {
        let (s, body) = http(api, "GET", "/metrics", None, &[], None);
        assert_eq!(s, 200);
        let text = body.as_str().unwrap_or_default().to_string();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        (
            prometheus_parse::Scrape::parse(lines).expect("Prometheus text"),
            text,
        )
    };
    // The attempt metrics are recorded as events arrive: wait for the last one.
    wait_for("the attempts to be counted", || {
        scrape(&api).1.contains(
            "vigil_task_attempts_total{dag_id=\"hello\",task_type=\"noop\",state=\"success\"} 1",
        )
    });
    let (scrape, text) = scrape(&api);
    assert!(!scrape.samples.is_empty(), "{text}");
    for sample in &scrape.samples {
        assert!(
            sample.metric.starts_with("vigil_"),
            "{} has no vigil_ prefix",
            sample.metric
        );
    }
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[3] == "histogram" {
            assert!(words[2].ends_with("_seconds"), "{line}");
        }
        if words[3] == "counter" {
            assert!(text.contains(&format!("{}_total", words[2])), "{line}");
        }
    }
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        value(
            "vigil_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(
        value("vigil_runs", &[("dag_id", "hello"), ("state", "success")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            "vigil_task_instances",
            &[("dag_id", "hello"), ("state", "success")]
        ),
        Some(2.0)
    );
    assert_eq!(value("vigil_queue_depth", &[]), Some(0.0));
    assert_eq!(value("vigil_outbox_failed_deliveries", &[]), Some(0.0));
    let histogram = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "vigil_task_duration_seconds"
                && s.labels.get("task_type") == Some("command")
        })
        .expect("a duration histogram for the command task");
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(buckets.last().map(|b| b.count), Some(1.0), "{buckets:?}");
        }
        other => panic!("not a histogram: {other:?}"),
    }
    assert_eq!(d.terminate(), 0);
}

/// The model registry and the outbox through the API: read, compare, check, roll back through
/// the token, promote, and the outbox holds the rollback's message to retry.
#[test]
fn the_registry_and_the_outbox_answer_and_change_only_with_the_token() {
    let p = project("\n[notify]\nemail_on_failure = [\"ops@example.com\"]\n");
    for (v, rmse) in [("v1", "3.0"), ("v2", "3.6")] {
        let metric = format!("rmse={rmse}");
        p.vigil(&[
            "model",
            "register",
            "churn",
            "--version",
            v,
            "--metric",
            &metric,
        ])
        .expect(0);
        p.vigil(&["model", "promote", "churn", v]).expect(0);
    }
    let d = p.daemon(&[]);
    let api = api_of(&d);
    let get = |path: &str| http(&api, "GET", path, None, &[], None);
    let post = |path: &str, token: Option<&str>, body: &str| {
        http(&api, "POST", path, token, &[], Some(body))
    };

    let (s, models) = get("/api/v1/models");
    assert_eq!(s, 200, "{models}");
    assert_eq!(models[0]["name"], "churn");
    assert_eq!(models[0]["production_version"], "v2");
    let (s, status) = get("/api/v1/models/churn");
    assert_eq!(s, 200, "{status}");
    assert_eq!(status["previous"]["version"], "v1");
    let (s, body) = get("/api/v1/models/nope");
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (s, versions) = get("/api/v1/models/churn/versions");
    assert_eq!(s, 200, "{versions}");
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[0]["version"]["metrics"]["rmse"], 3.6);
    let (s, _) = get("/api/v1/models/churn/versions?limit=0");
    assert_eq!(s, 400);
    let (s, judged) = get("/api/v1/models/churn/compare?baseline=v1&candidate=v2");
    assert_eq!(s, 200, "{judged}");
    assert_eq!(judged["verdict"], "DEGRADED", "{judged}");
    let (s, body) = get("/api/v1/models/churn/compare?baseline=v1");
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );

    // A check: a change (it records its verdict), so it needs the token.
    let (s, _) = post("/api/v1/models/churn/check", None, "{}");
    assert_eq!(s, 401);
    let (s, checked) = post(
        "/api/v1/models/churn/check",
        Some(TOKEN),
        r#"{"dry_run": true}"#,
    );
    assert_eq!(s, 200, "{checked}");
    assert_eq!(checked["judgement"]["verdict"], "DEGRADED", "{checked}");
    // From recorded metrics (this model logged no predictions): no sequential evidence.
    assert!(
        checked["judgement"]
            .as_object()
            .is_some_and(|j| j.contains_key("sequential")),
        "{checked}"
    );
    let (s, body) = post(
        "/api/v1/models/churn/check",
        Some(TOKEN),
        r#"{"dry_run": true, "window": "fortnight"}"#,
    );
    assert_eq!(s, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("window"),
        "{body}"
    );
    let (s, checked) = post(
        "/api/v1/models/churn/check",
        Some(TOKEN),
        r#"{"dry_run": true, "window": "all"}"#,
    );
    assert_eq!(s, 200, "{checked}");
    let (_, alerts) = get("/api/v1/models/churn/alerts");
    assert_eq!(alerts[0]["verdict"], "DEGRADED", "{alerts}");

    // Rollback: a reason is required, an unknown target is named, then it happens once.
    let (s, body) = post(
        "/api/v1/models/churn/rollback",
        Some(TOKEN),
        r#"{"reason": " "}"#,
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    let (s, body) = post(
        "/api/v1/models/churn/rollback",
        Some(TOKEN),
        r#"{"reason": "worse", "to": "v9"}"#,
    );
    assert_eq!(s, 404, "{body}");
    clean(&p, &body);
    let (s, _) = post(
        "/api/v1/models/churn/rollback",
        None,
        r#"{"reason": "worse"}"#,
    );
    assert_eq!(s, 401);
    let (s, rolled) = post(
        "/api/v1/models/churn/rollback",
        Some(TOKEN),
        r#"{"reason": "worse"}"#,
    );
    assert_eq!(s, 200, "{rolled}");
    assert_eq!(
        get("/api/v1/models/churn").1["model"]["production_version"],
        "v1"
    );
    let (_, events) = get("/api/v1/models/churn/deployments?limit=1");
    assert_eq!(events[0]["to_version"], "v1", "{events}");
    assert!(events.to_string().contains("worse"), "{events}");
    let (s, again) = post(
        "/api/v1/models/churn/rollback",
        Some(TOKEN),
        r#"{"reason": "worse", "to": "v1"}"#,
    );
    assert_eq!(s, 200, "{again}");
    assert_eq!(
        get("/api/v1/models/churn").1["model"]["production_version"],
        "v1"
    );
    let (s, promoted) = post(
        "/api/v1/models/churn/promote",
        Some(TOKEN),
        r#"{"version": "v2", "reason": "fixed"}"#,
    );
    assert_eq!(s, 200, "{promoted}");
    assert_eq!(
        get("/api/v1/models/churn").1["model"]["production_version"],
        "v2"
    );
    let (s, _) = post(
        "/api/v1/models/churn/promote",
        Some(TOKEN),
        r#"{"version": "v2"}"#,
    );
    assert_eq!(s, 400, "a promotion without a reason");

    // The rollback told ops@example.com: its message waits in the outbox (no SMTP here).
    let (s, outbox) = get("/api/v1/outbox?state=pending");
    assert_eq!(s, 200, "{outbox}");
    let id = outbox
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|m| m["recipients"].to_string().contains("ops@example.com"))
        })
        .and_then(|m| m["id"].as_i64())
        .expect("the rollback's message");
    let (s, _) = post(&format!("/api/v1/outbox/{id}/retry"), None, "");
    assert_eq!(s, 401);
    let (s, body) = post(&format!("/api/v1/outbox/{id}/retry"), Some(TOKEN), "");
    assert_eq!(s, 200, "{body}");
    let (s, body) = post("/api/v1/outbox/999999/retry", Some(TOKEN), "");
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (s, body) = get("/api/v1/outbox?state=lost");
    assert_eq!(s, 400, "{body}");

    let (_, metrics) = get("/metrics");
    let text = metrics.as_str().unwrap_or_default();
    assert!(
        text.contains("vigil_model_production_info{model=\"churn\",version=\"v2\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("vigil_model_last_verdict_info{model=\"churn\",verdict=\"DEGRADED\"} 1"),
        "{text}"
    );
    assert_eq!(d.terminate(), 0);
}

/// No CORS headers unless origins are configured; then only for those origins, preflight
/// included.
#[test]
fn cors_is_off_unless_configured_and_then_only_for_the_named_origins() {
    let p = project("");
    let d = p.daemon(&[]);
    let api = api_of(&d);
    let origin = [("Origin", "https://ops.example.com")];
    let (head, _) = raw(&api, "GET", "/api/v1/dags", None, &origin, None);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    assert_eq!(d.terminate(), 0);

    let p = project("cors_origins = [\"https://ops.example.com\"]\n");
    let d = p.daemon(&[]);
    let api = api_of(&d);
    let (head, _) = raw(&api, "GET", "/api/v1/dags", None, &origin, None);
    assert!(
        head.contains("access-control-allow-origin: https://ops.example.com"),
        "{head}"
    );
    let preflight = [
        ("Origin", "https://ops.example.com"),
        ("Access-Control-Request-Method", "POST"),
        (
            "Access-Control-Request-Headers",
            "authorization, idempotency-key",
        ),
    ];
    let (head, _) = raw(
        &api,
        "OPTIONS",
        "/api/v1/dags/hello/runs",
        None,
        &preflight,
        None,
    );
    assert!(head.contains("access-control-allow-methods"), "{head}");
    assert!(head.contains("idempotency-key"), "{head}");
    let (head, _) = raw(
        &api,
        "GET",
        "/api/v1/dags",
        None,
        &[("Origin", "https://evil.example")],
        None,
    );
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    assert_eq!(d.terminate(), 0);

    // An origin written as a URL with a path is refused at start, naming the key.
    let p = project("cors_origins = [\"https://ops.example.com/app\"]\n");
    let err = p.vigil(&["daemon"]).expect(1).stderr();
    assert!(
        err.contains("api.cors_origins") && err.contains("/app"),
        "{err}"
    );
}

/// The risk model through the API: none registered is a 404; trained, its version and
/// hold-out metrics are shown, and posted deployments (CSV or JSON rows) are scored with bands
/// and drivers as `risk score` scores the same file; a bad value names its line and column.
#[test]
fn the_risk_model_is_shown_and_scores_posted_deployments() {
    let p = project("");
    p.vigil(&["risk", "simulate", "--rows", "600", "--out", "data/risk"])
        .expect(0);
    let d = p.daemon(&[]);
    let api = api_of(&d);
    let (s, body) = http(&api, "GET", "/api/v1/risk", None, &[], None);
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    p.vigil(&[
        "risk", "train", "--folds", "2", "--grid", "trees=10", "--grid", "depth=4",
    ])
    .expect(0);
    let (s, model) = http(&api, "GET", "/api/v1/risk", None, &[], None);
    assert_eq!(s, 200, "{model}");
    assert!(model["holdout"]["roc_auc"].is_number(), "{model}");
    assert!(model["version"]["version"].is_string(), "{model}");
    // The figures the web page shows, drawn from the model alone.
    for name in ["confusion_matrix", "feature_importance.svg"] {
        let (head, svg) = raw(
            &api,
            "GET",
            &format!("/api/v1/risk/figures/{name}"),
            None,
            &[],
            None,
        );
        assert!(head.starts_with("http/1.1 200"), "{head}\n{svg}");
        assert!(head.contains("content-type: image/svg+xml"), "{head}");
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    }
    let (s, body) = http(
        &api,
        "GET",
        "/api/v1/risk/figures/../../etc/passwd",
        None,
        &[],
        None,
    );
    assert_eq!(s, 404, "{body}");
    let (s, body) = http(
        &api,
        "GET",
        "/api/v1/risk/figures/roc_curve",
        None,
        &[],
        None,
    );
    assert_eq!(s, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("confusion_matrix"),
        "{body}"
    );

    let csv = std::fs::read_to_string(p.path().join("data/risk/new_deployments.csv")).unwrap();
    let (head, body) = raw(
        &api,
        "POST",
        "/api/v1/risk/score",
        Some(TOKEN),
        &[("Content-Type", "text/csv")],
        Some(&csv),
    );
    assert!(head.starts_with("http/1.1 200"), "{head}\n{body}");
    let scored: Value = serde_json::from_str(&body).unwrap();
    let cli = p
        .vigil(&["risk", "score", "data/risk/new_deployments.csv", "--json"])
        .json();
    assert_eq!(
        scored["deployments"], cli["deployments"],
        "the API and the CLI score alike"
    );
    assert_eq!(scored["worst"], cli["worst"]);
    assert!(scored["deployments"][0]["drivers"].is_array());

    let rows = r#"{"rows": [{"deployment_id": "d1", "service": "api", "timestamp": "2026-01-05T10:00:00Z",
        "latency_ms": 950, "error_rate": 6.5, "cpu_pct": 93, "memory_pct": 90, "change_size": 2400,
        "hour": 2, "recent_failures": 3}]}"#;
    let (s, one) = http(
        &api,
        "POST",
        "/api/v1/risk/score?block_above=0.9&review_above=0.1",
        Some(TOKEN),
        &[],
        Some(rows),
    );
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["deployments"][0]["deployment_id"], "d1");
    assert_eq!(one["block_above"], 0.9);
    let bad = rows.replace("\"latency_ms\": 950", "\"latency_ms\": \"slow\"");
    let (s, body) = http(
        &api,
        "POST",
        "/api/v1/risk/score",
        Some(TOKEN),
        &[],
        Some(&bad),
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("line 2") && message.contains("latency_ms") && message.contains("slow"),
        "{message}"
    );
    clean(&p, &body);
    let (s, body) = http(
        &api,
        "POST",
        "/api/v1/risk/score?block_above=0.1&review_above=0.9",
        Some(TOKEN),
        &[],
        Some(rows),
    );
    assert_eq!(s, 400, "{body}");
    let (s, _) = http(&api, "POST", "/api/v1/risk/score", None, &[], Some(rows));
    assert_eq!(s, 401);
    assert_eq!(d.terminate(), 0);
}

#[test]
fn a_running_attempts_log_is_followed_while_it_runs_and_streams_are_bounded() {
    let p = project("");
    let go = p.path().join("go");
    p.write(
        "dags/live.toml",
        &format!(
            "[tasks.talk]\ntype = \"command\"\n[tasks.talk.config]\nshell = true\ncommand = \"echo first >&2; while [ ! -f '{}' ]; do sleep 0.1; done; echo second >&2\"\n",
            go.display()
        ),
    );
    let d = p.daemon(&[]);
    let api = api_of(&d);
    let run = trigger(&api, "live");
    let stream_path = format!("/api/v1/runs/{run}/tasks/talk/logs/stream");

    // The stream opens before the attempt has printed anything and shows its first line
    // while it still runs: it cannot print `second` before the test writes `go`.
    let (status, mut events) = open_stream(&api, &stream_path);
    assert_eq!(status, 200);
    let seen = read_until(&mut events, "first");
    assert!(
        seen.iter().any(|l| l == "event: attempt"),
        "the stream names its attempt first: {seen:?}"
    );
    let (_, logs) = http(
        &api,
        "GET",
        &format!("/api/v1/runs/{run}/tasks/talk/logs?attempt=1"),
        None,
        &[],
        None,
    );
    let first = logs
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["message"] == "first")
        .unwrap_or_else(|| panic!("`first` is stored while the attempt runs: {logs}"))
        .clone();
    assert!(
        !logs.to_string().contains("\"message\":\"second\""),
        "{logs}"
    );
    let (_, now) = http(&api, "GET", &format!("/api/v1/runs/{run}"), None, &[], None);
    assert_eq!(now["run"]["state"], "running", "{now}");

    // The CLI follows the same attempt.
    let follower = p
        .command(&["tasks", "logs", &run.to_string(), "talk", "--follow"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start vigil tasks logs --follow");

    // Streams are bounded: past the limit a clear 503 says to poll instead ...
    let mut open = Vec::new();
    loop {
        let (status, reader) = open_stream(&api, &stream_path);
        if status != 200 {
            assert_eq!(status, 503, "a stream past the limit");
            break;
        }
        open.push(reader);
        assert!(open.len() <= 64, "more than 64 streams were let open");
    }
    assert_eq!(
        open.len(),
        63,
        "64 streams in all (the first one is still open)"
    );
    let (s, refused) = http(&api, "GET", &stream_path, None, &[], None);
    assert_eq!(s, 503, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("?after="),
        "{refused}"
    );
    // ... and a slot freed by a client that left is given to the next one.
    drop(open);
    wait_for("a closed stream's slot to be free again", || {
        let (status, _reader) = open_stream(&api, &stream_path);
        status == 200
    });

    std::fs::write(&go, "").unwrap();
    let rest = read_until(&mut events, "event: end");
    assert!(
        rest.iter().any(|l| l.contains("\"message\":\"second\"")),
        "the stream shows the line printed after `first`: {rest:?}"
    );
    let out = follower
        .wait_with_output()
        .expect("the follower ends with the attempt");
    assert_eq!(out.status.code(), Some(0));
    let printed = String::from_utf8_lossy(&out.stdout);
    let (a, b) = (printed.find(" first\n"), printed.find(" second\n"));
    assert!(
        matches!((a, b), (Some(a), Some(b)) if a < b),
        "the follower printed both lines in order: {printed}"
    );

    // Polling after a line returns only the lines after it.
    let after = first["seq"].as_u64().unwrap();
    let (_, later) = http(
        &api,
        "GET",
        &format!("/api/v1/runs/{run}/tasks/talk/logs?attempt=1&after={after}"),
        None,
        &[],
        None,
    );
    let later = later.to_string();
    assert!(
        later.contains("second") && !later.contains("\"first\""),
        "{later}"
    );
    // The whole log is stored once: each line once, numbered without gaps.
    let (_, all) = http(
        &api,
        "GET",
        &format!("/api/v1/runs/{run}/tasks/talk/logs"),
        None,
        &[],
        None,
    );
    let seqs: Vec<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["seq"].as_u64())
        .collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "{all}");
    // A missing task is a 404, not an empty stream.
    let (status, _) = open_stream(&api, &format!("/api/v1/runs/{run}/tasks/nope/logs/stream"));
    assert_eq!(status, 404);
}

/// The API token, a sentinel, is in no output: not in the daemon's log, the database, any
/// response (accepted or refused, even one that sent a near miss), the page, the metrics, or
/// the CLI's output.
#[test]
fn the_api_token_never_appears_in_any_output() {
    const SENTINEL: &str = "SENTINEL-token-7d2a91c4e0";
    let p = Project::with_api_token(SENTINEL);
    p.write(
        "dags/hello.toml",
        "[params]\nname = \"world\"\n\n[tasks.greet]\ntype = \"command\"\n[tasks.greet.config]\ncommand = [\"sh\", \"-c\", \"env >&2; echo {}\"]\n",
    );
    let d = p.daemon(&[]);
    let api = api_of(&d);
    let mut seen = String::new();
    let (s, run) = http(
        &api,
        "POST",
        "/api/v1/dags/hello/runs",
        Some(SENTINEL),
        &[],
        Some("{}"),
    );
    assert_eq!(s, 201, "{run}");
    seen.push_str(&run.to_string());
    let id = run["run"]["id"].as_i64().unwrap_or_default();
    wait_for("the run to end", || {
        http(&api, "GET", &format!("/api/v1/runs/{id}"), None, &[], None).1["run"]["state"]
            == "success"
    });
    // A near miss and a token in the wrong place are refused without being echoed.
    for (token, header) in [
        (Some(&*format!("{SENTINEL}x")), vec![]),
        (None, vec![("X-Api-Token", SENTINEL)]),
    ] {
        let (s, body) = http(
            &api,
            "POST",
            "/api/v1/dags/hello/pause",
            token,
            &header,
            Some("{}"),
        );
        assert_eq!(s, 401, "{body}");
        seen.push_str(&body.to_string());
    }
    for path in [
        "/api/v1/dags".to_string(),
        format!("/api/v1/runs/{id}"),
        format!("/api/v1/runs/{id}/tasks/greet/logs"),
        format!("/api/v1/runs/{id}/tasks/greet/result"),
        "/api/v1/openapi.json".into(),
        "/metrics".into(),
        "/healthz".into(),
        "/".into(),
        "/ui/app.js".into(),
    ] {
        let (s, body) = http(&api, "GET", &path, Some(SENTINEL), &[], None);
        assert!(s < 400, "{path}: {s} {body}");
        seen.push_str(&body.to_string());
    }
    for args in [
        vec!["dags", "list", "--json"],
        vec!["runs", "list", "--json"],
        vec!["runs", "show", &id.to_string(), "--json"],
        vec!["tasks", "logs", &id.to_string(), "greet"],
        vec!["daemons", "--json"],
        vec!["notify", "list"],
    ] {
        let r = p.vigil(&args);
        seen.push_str(&r.stdout());
        seen.push_str(&r.stderr());
    }
    let logs = d.logs();
    assert_eq!(d.terminate(), 0);
    seen.push_str(&logs);
    for file in ["vigil.db", "vigil.db-wal"] {
        seen.push_str(&String::from_utf8_lossy(
            &std::fs::read(p.path().join(file)).unwrap_or_default(),
        ));
    }
    // The search covered real output: the task's environment is in its log.
    assert!(seen.contains("VIGIL_TASK_ID=greet"), "{seen}");
    assert!(!seen.contains(SENTINEL), "the token leaked");
}
