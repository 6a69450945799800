//! Notifications end to end: a real SMTP server (mailin-embedded) and a real HTTP server
//! (axum) on 127.0.0.1, the real `vigil` binary writing the outbox and the daemon (or
//! `vigil notify send`) delivering it.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use mailin_embedded::{Handler, Response, Server};

use crate::util::{DaemonProcess, Project, wait_for};

/// One message as the SMTP server received it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

impl Mail {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    }
}

/// Records every message; rejects recipients whose address contains `reject` with a
/// permanent 550, as a real relay does for an unknown mailbox.
#[derive(Clone, Default)]
struct Recorder {
    inbox: Arc<Mutex<Vec<Mail>>>,
    current: Mail,
}

impl Handler for Recorder {
    fn data_start(&mut self, _domain: &str, from: &str, _8bit: bool, to: &[String]) -> Response {
        self.current = Mail {
            from: from.to_string(),
            to: to.to_vec(),
            data: String::new(),
        };
        mailin_embedded::response::START_DATA
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if to.contains("reject") {
            Response::custom(550, "5.1.1 no such mailbox here".into())
        } else {
            mailin_embedded::response::OK
        }
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.data.push_str(&String::from_utf8_lossy(buf));
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Ok(mut inbox) = self.inbox.lock() {
            inbox.push(std::mem::take(&mut self.current));
        }
        mailin_embedded::response::OK
    }
}

/// A real SMTP server on 127.0.0.1, serving on a background thread until the test ends.
pub(crate) struct Smtp {
    inbox: Arc<Mutex<Vec<Mail>>>,
}

impl Smtp {
    pub(crate) fn start(port: u16) -> Smtp {
        let recorder = Recorder::default();
        let inbox = recorder.inbox.clone();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the SMTP port");
        let mut server = Server::new(recorder);
        server
            .with_name("mail.test")
            .with_num_threads(2)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Smtp { inbox }
    }

    pub(crate) fn mails(&self) -> Vec<Mail> {
        self.inbox.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// A port nobody listens on (yet).
pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A project whose config sends through `127.0.0.1:port`, retrying quickly.
fn project(port: u16, extra: &str) -> Project {
    let p = Project::new();
    p.write(
        "config/vigil.toml",
        &format!(
            r#"
[daemon]
heartbeat_interval = "1s"
lease = "3s"
shutdown_grace = "1s"

[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "vigil <vigil@vigil.test>"
timeout = "2s"

[notify]
base_url = "https://vigil.example.com"
poll_interval = "200ms"
retry_delay = "200ms"
max_retry_delay = "1s"
{extra}
"#
        ),
    );
    p
}

const FAILING: &str = r#"
id = "nightly"
[notify]
email_on_failure = ["oncall@example.com", "Data Team <data@example.com>"]

[tasks.extract]
type = "command"
config = { command = ["sh", "-c", "echo 'reading rows'; echo 'bad header: x\r\nBcc: victim@evil.test' >&2; exit 3"] }
retries = 1
retry_delay = "10ms"
"#;

/// Starts a daemon, fails a run of the `nightly` DAG through it, and waits until the
/// failure mail has been tried at least once (and is still pending).
fn failed_run_with_mail_pending(p: &Project) -> DaemonProcess {
    p.write("dags/nightly.toml", FAILING);
    let daemon = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "nightly", "--wait"]).expect(1);
    wait_for("a failed delivery attempt", || {
        outbox(p, "pending")
            .first()
            .is_some_and(|m| m["attempts"].as_u64() >= Some(1))
    });
    daemon
}

fn outbox(p: &Project, state: &str) -> Vec<serde_json::Value> {
    p.vigil(&["notify", "list", "--state", state, "--json"])
        .expect(0)
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_failed_run_mails_what_failed_where_and_how_to_look() {
    let port = free_port();
    let smtp = Smtp::start(port);
    let p = project(port, "");
    p.write("dags/nightly.toml", FAILING);
    p.vigil(&["dags", "test", "nightly"]).expect(1);
    // One message: the task's final failure. The run's own failure message would go to
    // the same people, so it is not queued twice.
    let pending = outbox(&p, "pending");
    assert_eq!(pending.len(), 1, "{pending:?}");
    let sent = p.vigil(&["notify", "send"]).expect(0);
    assert!(sent.stdout().contains("sent 1"), "{}", sent.stdout());

    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.from, "vigil@vigil.test");
    assert_eq!(m.to, vec!["oncall@example.com", "data@example.com"]);
    let subject = m.header("Subject").expect("a subject");
    assert!(
        subject.starts_with("[vigil] FAILED nightly.extract (") && subject.ends_with(" UTC)"),
        "{subject}"
    );
    let id = m.header("Message-ID").expect("a Message-ID");
    assert!(
        id.starts_with("<vigil.1.") && id.ends_with("@vigil.test>"),
        "{id}"
    );
    // Task output reached the body, never the headers.
    assert!(m.header("Bcc").is_none(), "{}", m.data);
    assert!(m.data.contains("multipart/alternative"), "{}", m.data);
    assert!(m.data.contains("text/html"), "{}", m.data);
    let body = decoded(&m.data);
    for want in [
        "DAG:           nightly",
        "Task:          extract",
        "Run:           1",
        "Attempt:       2 of 2 (0 retries left)",
        "exited with code 3",
        "bad header: x",
        "Run: https://vigil.example.com/dags/nightly/runs/1",
    ] {
        assert!(body.contains(want), "missing {want:?} in:\n{body}");
    }
    let sent = outbox(&p, "sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["attempts"], 1);
}

/// The message body with quoted-printable soft breaks and escapes undone, enough to search.
fn decoded(data: &str) -> String {
    let joined = data.replace("=\r\n", "").replace("=\n", "");
    let mut out = String::new();
    let mut chars = joined.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '=' {
            let hex: String = chars.clone().take(2).collect();
            if let Ok(b) = u8::from_str_radix(&hex, 16) {
                out.push(b as char);
                chars.next();
                chars.next();
                continue;
            }
        }
        out.push(c);
    }
    out.replace("\r\n", "\n")
}

#[test]
fn mail_waits_while_smtp_is_down_and_arrives_exactly_once() {
    let port = free_port();
    let p = project(port, "");
    // Nobody listens: the delivery is retried, and stays pending.
    let daemon = failed_run_with_mail_pending(&p);
    let m = &outbox(&p, "pending")[0];
    assert!(
        m["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("127.0.0.1"),
        "{m}"
    );
    let smtp = Smtp::start(port);
    wait_for("the mail to arrive", || smtp.mails().len() == 1);
    wait_for("the delivery to be recorded", || {
        outbox(&p, "sent").len() == 1
    });
    // Several more polls find nothing more to send.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(smtp.mails().len(), 1, "sent exactly once");
    assert!(outbox(&p, "pending").is_empty());
    drop(daemon);
}

#[test]
fn a_permanent_rejection_is_marked_failed_and_not_retried() {
    let port = free_port();
    let smtp = Smtp::start(port);
    let p = project(port, "");
    p.write(
        "dags/nightly.toml",
        &FAILING.replace(
            r#"["oncall@example.com", "Data Team <data@example.com>"]"#,
            r#"["reject-me@example.com"]"#,
        ),
    );
    p.vigil(&["dags", "test", "nightly"]).expect(1);
    // `notify send` exits 1 when a delivery failed for good.
    p.vigil(&["notify", "send"]).expect(1);
    let failed = outbox(&p, "failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["attempts"], 1);
    let error = failed[0]["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("550") && error.contains("no such mailbox"),
        "{error}"
    );
    // Later passes leave it alone…
    p.vigil(&["notify", "send"]).expect(0);
    assert_eq!(outbox(&p, "failed")[0]["attempts"], 1);
    assert!(smtp.mails().is_empty());
    // …until a person asks for it again.
    let id = failed[0]["id"].as_i64().unwrap_or_default().to_string();
    let retried = p.vigil(&["notify", "retry", &id]).expect(0);
    assert!(
        retried.stdout().contains("queued again"),
        "{}",
        retried.stdout()
    );
    p.vigil(&["notify", "send"]).expect(1);
    assert_eq!(outbox(&p, "failed")[0]["attempts"], 2);
    // A sent message is never sent twice.
    let list = p.vigil(&["notify", "list"]).expect(0);
    assert!(
        list.stdout().contains("reject-me@example.com"),
        "{}",
        list.stdout()
    );
    let missing = p.vigil(&["notify", "retry", "99"]).expect(1);
    assert!(
        missing.stderr().contains("there is no message 99"),
        "{}",
        missing.stderr()
    );
}

#[test]
fn mail_pending_when_the_daemon_is_killed_is_sent_after_restart_once() {
    let port = free_port();
    let p = project(port, "");
    let daemon = failed_run_with_mail_pending(&p);
    daemon.kill9();
    let smtp = Smtp::start(port);
    let daemon = p.daemon(&[]);
    wait_for("the mail to arrive after the restart", || {
        smtp.mails().len() == 1
    });
    wait_for("the delivery to be recorded", || {
        outbox(&p, "sent").len() == 1
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(smtp.mails().len(), 1, "none duplicated");
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn a_hung_smtp_server_delays_only_the_mail() {
    // Accepts connections and never says a word.
    let hung = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = hung.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hung.incoming().flatten() {
            held.push(conn);
        }
    });
    let p = project(port, "");
    p.write("dags/nightly.toml", FAILING);
    p.write(
        "dags/fine.toml",
        "id = \"fine\"\n[tasks.a]\ntype = \"noop\"\n",
    );
    let daemon = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "nightly", "--wait"]).expect(1);
    // While the worker waits on the silent server, runs go on.
    for _ in 0..3 {
        p.vigil(&["dags", "trigger", "fine", "--wait"]).expect(0);
    }
    wait_for("the timeout to be recorded", || {
        outbox(&p, "pending").first().is_some_and(|m| {
            m["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("did not answer within"))
        })
    });
    assert_eq!(daemon.terminate(), 0);
}

/// Records POSTed JSON bodies; answers 500 to the first one, like a receiver mid-deploy.
#[derive(Clone, Default)]
struct Hook {
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

async fn receive(
    axum::extract::State(hook): axum::extract::State<Hook>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> axum::http::StatusCode {
    let mut bodies = hook.bodies.lock().expect("lock");
    bodies.push(body);
    if bodies.len() == 1 {
        axum::http::StatusCode::INTERNAL_SERVER_ERROR
    } else {
        axum::http::StatusCode::OK
    }
}

fn start_hook() -> (Hook, u16) {
    let hook = Hook::default();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let state = hook.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new()
                .route("/hooks/vigil/s3cr3t", axum::routing::post(receive))
                .with_state(state);
            let _ = axum::serve(listener, app).await;
        });
    });
    (hook, port)
}

#[test]
fn a_webhook_gets_slack_text_and_the_event_with_retries() {
    let (hook, hook_port) = start_hook();
    let p = project(free_port(), "");
    let url = format!("http://127.0.0.1:{hook_port}/hooks/vigil/s3cr3t");
    p.write(
        "dags/nightly.toml",
        &format!(
            "id = \"nightly\"\n[notify]\nwebhook_on_failure = [\"{url}\"]\n[tasks.boom]\ntype = \"fail\"\nconfig = {{ message = \"disk full\" }}\n"
        ),
    );
    p.vigil(&["dags", "test", "nightly"]).expect(1);
    // First POST gets a 500: retried, not failed.
    p.vigil(&["notify", "send"]).expect(0);
    let pending = outbox(&p, "pending");
    assert_eq!(pending.len(), 1);
    assert!(
        pending[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("500"),
        "{:?}",
        pending[0]
    );
    // The secret path of the URL is not shown.
    assert_eq!(pending[0]["recipients"][0], "http://127.0.0.1/…");
    wait_for("the retry to fall due and succeed", || {
        p.vigil(&["notify", "send"]).expect(0);
        outbox(&p, "sent").len() == 1
    });
    let bodies = hook.bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 2, "one failed POST, one delivered");
    let b = &bodies[1];
    let text = b["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("[vigil] FAILED nightly.boom ("), "{text}");
    assert_eq!(b["event"]["event"], "task_failed");
    assert_eq!(b["event"]["dag_id"], "nightly");
    assert_eq!(b["event"]["task_id"], "boom");
    assert_eq!(b["event"]["error"], "disk full");
    assert_eq!(
        b["event"]["url"],
        "https://vigil.example.com/dags/nightly/runs/1"
    );
    assert_eq!(outbox(&p, "sent")[0]["attempts"], 2);
}

#[test]
fn the_smtp_password_never_reaches_logs_or_json() {
    const SENTINEL: &str = "SENTINEL-pw-4f1c9e";
    let port = free_port();
    let smtp = Smtp::start(port);
    let p = project(port, "");
    p.write("secrets/smtp", &format!("{SENTINEL}\n"));
    let config = std::fs::read_to_string(p.path().join("config/vigil.toml")).expect("config");
    p.write(
        "config/vigil.toml",
        &config.replace(
            "timeout = \"2s\"",
            "timeout = \"2s\"\nusername = \"vigil\"\npassword_file = \"secrets/smtp\"",
        ),
    );
    let mut seen = String::new();
    // The test server offers no AUTH on a plain connection, so the delivery fails (and is
    // retried) after the credentials were loaded and handed to the SMTP client.
    let daemon = failed_run_with_mail_pending(&p);
    for args in [
        vec!["notify", "list", "--json"],
        vec!["notify", "list"],
        vec!["notify", "test", "--to", "ops@example.com", "--json"],
        vec!["runs", "list", "--json"],
        vec!["dags", "show", "nightly", "--format", "json"],
    ] {
        let r = p.vigil(&args);
        seen.push_str(&r.stdout());
        seen.push_str(&r.stderr());
    }
    assert_eq!(daemon.terminate(), 0);
    seen.push_str(&String::from_utf8_lossy(
        &std::fs::read(p.path().join("vigil.db")).unwrap_or_default(),
    ));
    for entry in std::fs::read_dir(p.path()).expect("dir").flatten() {
        if entry.file_name().to_string_lossy().starts_with("daemon-") {
            seen.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    assert!(seen.contains("notify"), "the search covered real output");
    assert!(!seen.contains(SENTINEL), "the password leaked:\n{seen}");
    assert!(smtp.mails().is_empty());
}

#[test]
fn notify_test_reports_what_the_server_said() {
    let port = free_port();
    let smtp = Smtp::start(port);
    let p = project(port, "");
    let ok = p
        .vigil(&["notify", "test", "--to", "you@example.com"])
        .expect(0);
    assert!(
        ok.stdout().contains("the server said: 250"),
        "{}",
        ok.stdout()
    );
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["you@example.com"]);
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("[vigil] test message")
    );
    let rejected = p
        .vigil(&["notify", "test", "--to", "reject@example.com"])
        .expect(1);
    assert!(
        rejected.stdout().contains("550") && rejected.stdout().contains("no such mailbox"),
        "{}",
        rejected.stdout()
    );
}

/// An SMTP server that accepts every message (250 to DATA) and then never answers QUIT.
/// Returns its port and the number of messages it accepted.
fn start_quit_staller() -> (u16, Arc<Mutex<usize>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(Mutex::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let count = count.clone();
            std::thread::spawn(move || {
                let mut out = conn.try_clone().expect("clone");
                let mut lines = BufReader::new(conn);
                let _ = out.write_all(b"220 staller ESMTP\r\n");
                let mut in_data = false;
                let mut line = String::new();
                while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let cmd = line.trim_end().to_ascii_uppercase();
                    line.clear();
                    let reply: &[u8] = if in_data {
                        if cmd != "." {
                            continue;
                        }
                        in_data = false;
                        *count.lock().expect("lock") += 1;
                        b"250 accepted\r\n"
                    } else if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        b"250 staller\r\n"
                    } else if cmd.starts_with("DATA") {
                        in_data = true;
                        b"354 go on\r\n"
                    } else if cmd.starts_with("QUIT") {
                        // Never answers; holds the connection.
                        std::thread::sleep(std::time::Duration::from_secs(600));
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    if out.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

/// A server that answered 250 to the message has it: a stall on QUIT does not make vigil
/// send it again (the defect sent it at every retry, without end).
#[test]
fn a_message_accepted_before_a_stalled_quit_is_sent_once() {
    let (port, accepted) = start_quit_staller();
    let p = project(port, "");
    p.write(
        "config/vigil.toml",
        &std::fs::read_to_string(p.path().join("config/vigil.toml"))
            .unwrap()
            .replace("timeout = \"2s\"", "timeout = \"1s\""),
    );
    p.write("dags/nightly.toml", FAILING);
    p.vigil(&["dags", "test", "nightly"]).expect(1);
    let pending = outbox(&p, "pending").len();
    assert!(pending >= 1, "messages queued");
    // Several passes, each of which would resend a message thought unsent.
    for _ in 0..3 {
        p.vigil(&["notify", "send"]).expect(0);
        std::thread::sleep(std::time::Duration::from_millis(1200));
    }
    assert_eq!(
        outbox(&p, "pending").len(),
        0,
        "{:?}",
        outbox(&p, "pending")
    );
    assert_eq!(outbox(&p, "sent").len(), pending);
    assert_eq!(
        *accepted.lock().expect("lock"),
        pending,
        "each message accepted once"
    );
}

/// A webhook URL's secret path appears nowhere: not in the daemon's log line for a failed
/// POST, not in the stored error, not in `notify list --json`, not in `dags show --json`.
#[test]
fn webhook_secrets_appear_in_no_log_error_or_listing() {
    let dead = free_port();
    let url = format!("http://127.0.0.1:{dead}/services/T000/B000/s3cr3t-token");
    let p = project(free_port(), "");
    p.write(
        "dags/nightly.toml",
        &format!(
            "id = \"nightly\"\n[notify]\nwebhook_on_failure = [\"{url}\"]\n[tasks.boom]\ntype = \"fail\"\n"
        ),
    );
    let d = p.daemon(&[]);
    p.vigil(&["dags", "trigger", "nightly", "--wait"]).expect(1);
    wait_for("a failed POST", || {
        outbox(&p, "pending")
            .first()
            .is_some_and(|m| m["attempts"].as_u64() >= Some(1))
    });
    let logs = d.logs();
    assert_eq!(d.terminate(), 0);
    assert!(logs.contains("delivery failed; will retry"), "{logs}");
    let listed = p.vigil(&["notify", "list", "--json"]).expect(0).stdout();
    let shown = p
        .vigil(&["dags", "show", "nightly", "--json"])
        .expect(0)
        .stdout();
    let stored = {
        let url = format!("sqlite://{}", p.path().join("vigil.db").display());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                let errors: Vec<(Option<String>,)> =
                    sqlx::query_as("SELECT last_error FROM outbox")
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                format!("{errors:?}")
            })
    };
    assert!(stored.contains("error sending request"), "{stored}");
    for (what, text) in [
        ("log", &logs),
        ("notify list", &listed),
        ("dags show", &shown),
        ("outbox.last_error", &stored),
    ] {
        assert!(
            !text.contains("s3cr3t-token"),
            "{what} shows the secret:\n{text}"
        );
    }
}

/// Without `[smtp]`, mail waits in the outbox and the commands say why, not just "sent 0" or
/// "the outbox is empty" while messages are pending.
#[test]
fn with_no_smtp_host_the_outbox_says_what_waits_and_why() {
    let p = Project::new();
    p.write(
        "dags/broken.toml",
        "[notify]\nemail_on_failure = [\"ops@example.com\"]\n[tasks.a]\ntype = \"fail\"\n",
    );
    p.vigil(&["dags", "test", "broken"]).expect(1);
    let listed = p
        .vigil(&["notify", "list", "--state", "failed"])
        .expect(0)
        .stdout();
    assert!(
        listed.contains("no failed messages (pending 1, sent 0, failed 0)"),
        "{listed}"
    );
    let sent = p.vigil(&["notify", "send"]).expect(0).stdout();
    assert!(sent.contains("sent 0"), "{sent}");
    assert!(
        sent.contains("1 email(s) wait in the outbox: [smtp] host is not set"),
        "{sent}"
    );
}

/// An SMTP password given through the environment (`smtp.password_env`) stays out of the
/// tasks the daemon starts: a task that prints its whole environment shows it neither in its
/// log nor in the failure mail queued with that log.
#[test]
fn the_smtp_password_from_the_environment_is_kept_from_tasks_and_their_mail() {
    const SENTINEL: &str = "SENTINEL-envpw-83c1d0";
    let port = free_port();
    let _smtp = Smtp::start(port);
    let p = project(port, "");
    let config = std::fs::read_to_string(p.path().join("config/vigil.toml")).expect("config");
    p.write(
        "config/vigil.toml",
        &config.replace(
            "timeout = \"2s\"",
            "timeout = \"2s\"\nusername = \"vigil\"\npassword_env = \"SMTP_PW_FOR_TEST\"",
        ),
    );
    p.write(
        "dags/leaky.toml",
        "[notify]\nemail_on_failure = [\"oncall@example.com\"]\n\n[tasks.show]\ntype = \"command\"\nconfig = { command = [\"sh\", \"-c\", \"env >&2; exit 3\"] }\n",
    );
    let log = p.path().join("daemon.log");
    let mut daemon = p
        .command(&["daemon"])
        .env("SMTP_PW_FOR_TEST", SENTINEL)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start the daemon");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the daemon to start", || logs().contains("daemon started"));
    p.vigil(&["dags", "trigger", "leaky", "--wait"]).expect(1);
    let mut seen = String::new();
    for args in [
        vec!["tasks", "logs", "1", "show"],
        vec!["notify", "list", "--json"],
        vec!["runs", "show", "1", "--json"],
    ] {
        let r = p.vigil(&args);
        seen.push_str(&r.stdout());
        seen.push_str(&r.stderr());
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    seen.push_str(&logs());
    for file in ["vigil.db", "vigil.db-wal"] {
        seen.push_str(&String::from_utf8_lossy(
            &std::fs::read(p.path().join(file)).unwrap_or_default(),
        ));
    }
    // The search covered real output: the environment is in the log and the queued mail.
    assert!(seen.matches("VIGIL_TASK_ID=show").count() >= 2, "{seen}");
    assert!(!seen.contains(SENTINEL), "the password reached a task");
}
