//! The control socket: one JSON request line, one JSON answer line.
//! `ripsec up|down|status|reload` are its clients.
//!
//! Requests: `{"cmd":"up","conn":"NAME"}`, `{"cmd":"down","conn":"NAME"}`,
//! `{"cmd":"status"}`, `{"cmd":"reload"}`. Answers carry `"ok": true` and
//! the command's data, or `"ok": false` and `"error"`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exit;

pub const DEFAULT_SOCKET: &str = "/run/ripsec/ripsec.sock";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Up { conn: String },
    Down { conn: String },
    Status,
    Reload,
    /// Forget every IKE SA (and Child SA) with a peer address, sending
    /// nothing: the manual path for a peer known dead.
    #[serde(rename = "flush_peer")]
    FlushPeer { peer: String },
}

/// Why a control request failed, with the CLI exit code for it.
#[derive(Debug)]
pub struct CtlError {
    pub code: u8,
    pub msg: String,
}

/// Sends one request and returns the daemon's answer (`ok` checked).
pub fn call(socket: &Path, req: &Request) -> Result<Value, CtlError> {
    call_timeout(socket, req, Duration::from_secs(30))
}

/// `call` with a bound on the wait for the answer.
pub fn call_timeout(socket: &Path, req: &Request, timeout: Duration) -> Result<Value, CtlError> {
    let mut s = UnixStream::connect(socket).map_err(|e| CtlError {
        code: match e.kind() {
            std::io::ErrorKind::PermissionDenied => exit::PERMISSION_DENIED,
            _ => exit::DAEMON_NOT_RUNNING,
        },
        msg: match e.kind() {
            std::io::ErrorKind::PermissionDenied => format!("permission denied on {}", socket.display()),
            _ => format!(
                "no ripsec daemon is listening on {} ({e}); start it with: ripsec daemon --config FILE",
                socket.display()
            ),
        },
    })?;
    let io = |e: std::io::Error| CtlError { code: exit::ERROR, msg: format!("control socket: {e}") };
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_string(req).map_err(|e| CtlError { code: exit::ERROR, msg: e.to_string() })?;
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).map_err(io)?;
    let v: Value = serde_json::from_str(&answer)
        .map_err(|e| CtlError { code: exit::ERROR, msg: format!("bad answer from the daemon: {e}") })?;
    if v.get("ok") == Some(&Value::Bool(true)) {
        Ok(v)
    } else {
        let msg = v.get("error").and_then(Value::as_str).unwrap_or("request failed").to_owned();
        Err(CtlError { code: exit::ERROR, msg })
    }
}

fn conn_sas<'a>(status: &'a Value, conn: &str) -> Vec<&'a Value> {
    status
        .get("ike_sas")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|s| s.get("conn").and_then(Value::as_str) == Some(conn)).collect())
        .unwrap_or_default()
}

fn established_with_child(sa: &Value) -> bool {
    sa.get("state").and_then(Value::as_str) == Some("established")
        && sa.get("children").and_then(Value::as_array).is_some_and(|c| !c.is_empty())
}

/// What `ripsec up` prints for the established IKE SA `sa`: with `--json`
/// the daemon's status object of that IKE SA (one line), else a sentence.
pub fn up_output(conn: &str, sa: &Value, json: bool) -> String {
    if json {
        sa.to_string()
    } else {
        format!("connection '{conn}' established")
    }
}

/// What `ripsec down` prints once the connection has no IKE SA left.
pub fn down_output(conn: &str, json: bool) -> String {
    if json {
        serde_json::json!({ "conn": conn, "down": true }).to_string()
    } else {
        format!("connection '{conn}' down")
    }
}

/// `ripsec up`: initiates, then waits up to `timeout` for an established
/// IKE SA with a Child SA.
pub fn up(socket: &Path, conn: &str, timeout: f64, json: bool) -> Result<(), CtlError> {
    up_to(socket, conn, timeout, json, &mut std::io::stdout())
}

fn print(out: &mut impl Write, line: &str) -> Result<(), CtlError> {
    writeln!(out, "{line}").map_err(|e| CtlError { code: exit::ERROR, msg: format!("writing the output: {e}") })
}

/// `up`, printing to `out`.
pub fn up_to(socket: &Path, conn: &str, timeout: f64, json: bool, out: &mut impl Write) -> Result<(), CtlError> {
    call(socket, &Request::Up { conn: conn.to_owned() })?;
    let deadline = Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
    loop {
        let st = call(socket, &Request::Status)?;
        if let Some(sa) = conn_sas(&st, conn).into_iter().find(|s| established_with_child(s)) {
            return print(out, &up_output(conn, sa, json));
        }
        if Instant::now() >= deadline {
            return Err(CtlError {
                code: exit::ERROR,
                msg: format!("connection '{conn}' not established within {timeout} s (see the daemon's log)"),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `ripsec down`: deletes the connection's IKE SAs, then waits up to
/// `timeout` for them to be gone.
pub fn down(socket: &Path, conn: &str, timeout: f64, json: bool) -> Result<(), CtlError> {
    down_to(socket, conn, timeout, json, &mut std::io::stdout())
}

/// `down`, printing to `out`.
pub fn down_to(socket: &Path, conn: &str, timeout: f64, json: bool, out: &mut impl Write) -> Result<(), CtlError> {
    call(socket, &Request::Down { conn: conn.to_owned() })?;
    let deadline = Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
    loop {
        let st = call(socket, &Request::Status)?;
        let left = conn_sas(&st, conn).len();
        if left == 0 {
            return print(out, &down_output(conn, json));
        }
        if Instant::now() >= deadline {
            return Err(CtlError {
                code: exit::ERROR,
                msg: format!("connection '{conn}': {left} IKE SA(s) still present after {timeout} s"),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn reload(socket: &Path, json: bool) -> Result<(), CtlError> {
    let v = call(socket, &Request::Reload)?;
    if json {
        println!("{v}");
    } else {
        let list = |k: &str| {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        println!(
            "reloaded: added [{}] removed [{}] changed [{}] unchanged [{}]",
            list("added"),
            list("removed"),
            list("changed"),
            list("unchanged")
        );
    }
    Ok(())
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    }
}

/// A Child SA's traffic counters for the text status (" in P pkts B bytes,
/// out P pkts B bytes"), empty when the daemon gave none (module absent).
pub fn counters_text(c: &Value) -> String {
    let n = |k: &str| c.get(k).and_then(Value::as_u64);
    let dir = |name: &str| match (n(&format!("packets_{name}")), n(&format!("bytes_{name}"))) {
        (Some(p), Some(b)) => Some(format!("{name} {p} pkts {b} bytes")),
        _ => None,
    };
    let v: Vec<String> = [dir("in"), dir("out")].into_iter().flatten().collect();
    if v.is_empty() {
        String::new()
    } else {
        format!(" ({})", v.join(", "))
    }
}

pub fn status(socket: &Path, json: bool) -> Result<(), CtlError> {
    let v = call(socket, &Request::Status)?;
    if json {
        println!("{v}");
        return Ok(());
    }
    if let Some(conns) = v.get("connections").and_then(Value::as_array) {
        println!("Connections:");
        for c in conns {
            println!(
                "  {}: {} -> {} ({}, start {}, local address {})",
                s(c, "name"),
                s(c, "local_addr"),
                c.get("remote_addrs").and_then(Value::as_array).map_or("any".into(), |a| {
                    let v: Vec<String> = a.iter().filter_map(Value::as_str).map(str::to_owned).collect();
                    if v.is_empty() {
                        "any".into()
                    } else {
                        v.join(",")
                    }
                }),
                s(c, "mode"),
                s(c, "start"),
                if c.get("local_addr_present") == Some(&Value::Bool(true)) { "present" } else { "ABSENT" }
            );
        }
    }
    let sas = v.get("ike_sas").and_then(Value::as_array).cloned().unwrap_or_default();
    println!("IKE SAs: {}", sas.len());
    for sa in &sas {
        println!(
            "  {}[{}]: {} {} {} <-> {} {} [{}] <-> [{}] age {}s",
            s(sa, "conn"),
            s(sa, "id"),
            s(sa, "state"),
            if sa.get("initiator") == Some(&Value::Bool(true)) { "initiator" } else { "responder" },
            s(sa, "local"),
            s(sa, "remote"),
            s(sa, "suite"),
            s(sa, "local_id"),
            s(sa, "remote_id"),
            s(sa, "age_s"),
        );
        println!("    spi_i {} spi_r {}{}", s(sa, "spi_i"), s(sa, "spi_r"), if sa.get("udp_encap") == Some(&Value::Bool(true)) { " udp-encap" } else { "" });
        for c in sa.get("children").and_then(Value::as_array).into_iter().flatten() {
            let ts = |k: &str| {
                c.get(k)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default()
            };
            println!(
                "    child in {} out {} {} {}{}{} age {}s{}: {} === {}",
                s(c, "spi_in"),
                s(c, "spi_out"),
                s(c, "mode"),
                s(c, "alg"),
                if c.get("esn") == Some(&Value::Bool(true)) { " esn" } else { "" },
                if c.get("encap") == Some(&Value::Bool(true)) { " udp-encap" } else { "" },
                s(c, "age_s"),
                counters_text(c),
                ts("ts_local"),
                ts("ts_remote"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        assert_eq!(serde_json::to_string(&Request::Up { conn: "x".into() }).unwrap(), r#"{"cmd":"up","conn":"x"}"#);
        assert_eq!(serde_json::to_string(&Request::Status).unwrap(), r#"{"cmd":"status"}"#);
        let r: Request = serde_json::from_str(r#"{"cmd":"reload"}"#).unwrap();
        assert_eq!(r, Request::Reload);
    }

    #[test]
    fn counters_in_text_status() {
        let c = serde_json::json!({"spi_in": "0x1", "packets_in": 3, "bytes_in": 360, "packets_out": 2, "bytes_out": 240});
        assert_eq!(counters_text(&c), " (in 3 pkts 360 bytes, out 2 pkts 240 bytes)");
        let c = serde_json::json!({"spi_in": "0x1", "packets_out": 0, "bytes_out": 0});
        assert_eq!(counters_text(&c), " (out 0 pkts 0 bytes)");
        assert_eq!(counters_text(&serde_json::json!({"spi_in": "0x1"})), "", "no counters: nothing");
    }

    #[test]
    fn no_daemon_is_exit_5() {
        let dir = tempfile::tempdir().unwrap();
        let e = call(&dir.path().join("none.sock"), &Request::Status).unwrap_err();
        assert_eq!(e.code, exit::DAEMON_NOT_RUNNING);
        assert!(e.msg.contains("no ripsec daemon is listening"), "{}", e.msg);
    }

    /// A fake daemon on a unix socket for `conns` connections: answers
    /// each request line with `answer(request, n)`, n counting the status
    /// requests before this one, and returns the requests it got.
    fn fake_daemon(
        path: &Path,
        conns: usize,
        answer: impl Fn(&Request, usize) -> Value + Send + 'static,
    ) -> std::thread::JoinHandle<Vec<Request>> {
        let l = std::os::unix::net::UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut statuses = 0;
            for _ in 0..conns {
                let (mut s, _) = l.accept().unwrap();
                let mut line = String::new();
                BufReader::new(&s).read_line(&mut line).unwrap();
                let req: Request = serde_json::from_str(&line).unwrap();
                let a = answer(&req, statuses);
                if req == Request::Status {
                    statuses += 1;
                }
                writeln!(s, "{a}").unwrap();
                seen.push(req);
            }
            seen
        })
    }

    fn sa_json(conn: &str, state: &str, children: usize) -> Value {
        serde_json::json!({
            "conn": conn, "id": "1", "state": state, "initiator": true,
            "local_id": "client", "remote_id": "server",
            "children": (0..children).map(|i| serde_json::json!({"spi_in": format!("{:08x}", 0x1000 + i)})).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn up_json_prints_the_established_ike_sa_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let other = sa_json("other", "established", 1);
        let want = sa_json("c", "established", 1);
        let (o, w) = (other.clone(), want.clone());
        let d = fake_daemon(&path, 4, move |req, n| match req {
            Request::Up { .. } => serde_json::json!({"ok": true}),
            // First: only half-open; then established without a Child SA;
            // then with one.
            Request::Status => match n {
                0 => serde_json::json!({"ok": true, "ike_sas": [o.clone(), sa_json("c", "connecting", 0)]}),
                1 => serde_json::json!({"ok": true, "ike_sas": [o.clone(), sa_json("c", "established", 0)]}),
                _ => serde_json::json!({"ok": true, "ike_sas": [o.clone(), w.clone()]}),
            },
            _ => serde_json::json!({"ok": false, "error": "unexpected"}),
        });
        let mut out = Vec::new();
        up_to(&path, "c", 10.0, true, &mut out).unwrap();
        let seen = d.join().unwrap();
        assert_eq!(seen[0], Request::Up { conn: "c".into() });
        assert_eq!(seen[1..], [Request::Status, Request::Status, Request::Status]);
        let out = String::from_utf8(out).unwrap();
        assert!(out.ends_with('\n') && out.lines().count() == 1, "one line: {out:?}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, want, "exactly the daemon's status object of the connection's IKE SA");
        // Without --json: a sentence.
        assert_eq!(up_output("c", &want, false), "connection 'c' established");
    }

    #[test]
    fn down_json_prints_conn_and_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let d = fake_daemon(&path, 3, move |req, n| match req {
            Request::Down { .. } => serde_json::json!({"ok": true}),
            Request::Status if n == 0 => serde_json::json!({"ok": true, "ike_sas": [sa_json("c", "deleting", 1)]}),
            Request::Status => serde_json::json!({"ok": true, "ike_sas": [sa_json("other", "established", 1)]}),
            _ => serde_json::json!({"ok": false, "error": "unexpected"}),
        });
        let mut out = Vec::new();
        down_to(&path, "c", 10.0, true, &mut out).unwrap();
        let seen = d.join().unwrap();
        assert_eq!(seen, [Request::Down { conn: "c".into() }, Request::Status, Request::Status]);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out, "{\"conn\":\"c\",\"down\":true}\n");
        assert_eq!(down_output("c", false), "connection 'c' down");
    }

    #[test]
    fn up_error_answer_is_an_error_and_prints_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let d = fake_daemon(&path, 1, |_, _| serde_json::json!({"ok": false, "error": "unknown connection 'x'"}));
        let mut out = Vec::new();
        let e = up_to(&path, "x", 1.0, true, &mut out).unwrap_err();
        assert_eq!(e.code, exit::ERROR);
        assert_eq!(e.msg, "unknown connection 'x'");
        assert!(out.is_empty());
        // The Up answer was an error: no status poll followed.
        assert_eq!(d.join().unwrap(), [Request::Up { conn: "x".into() }]);
    }
}
