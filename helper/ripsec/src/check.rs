//! `ripsec check`: the health check for cluster managers (the analogue of
//! HP-UX's ipsec_status.sh), run as a package monitor by Pacemaker (see
//! contrib/ocf/ripsec) or keepalived (contrib/keepalived).
//!
//! Checks, in order, and stops at the first that fails:
//! 1. the rust_ipsec module answers in this network namespace (exit 3);
//! 2. the daemon answers `status` on its control socket within 5 s (exit 5);
//! 3. package state matches address ownership, for every connection (its
//!    local address is the package address): if the address is assigned
//!    here, the daemon must know it and act for the connection; if it is
//!    not, the daemon must hold no IKE SA for the connection and the module
//!    no SA from or to that address (exit 7).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::ctl::{self, Request};
use crate::daemon::addrs::AddrWatch;
use crate::exit;
use crate::genl::{self, Client};
use crate::{abi, stats};

/// One connection as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnView {
    pub name: String,
    pub local_addr: IpAddr,
    /// Whether the daemon believes the address is assigned.
    pub daemon_sees_addr: bool,
    /// IKE SAs of the connection in the daemon, any state.
    pub ike_sas: usize,
}

/// The verdict for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnVerdict {
    pub name: String,
    pub local_addr: IpAddr,
    pub assigned: bool,
    pub ike_sas: usize,
    pub module_sas: usize,
    /// None when consistent.
    pub problem: Option<String>,
}

/// Pure consistency rule (unit tested): `addrs` are the addresses assigned
/// in this namespace, `module_sas` the (src, dst) of every SA in the module.
pub fn evaluate(conns: &[ConnView], addrs: &BTreeSet<IpAddr>, module_sas: &[(IpAddr, IpAddr)]) -> Vec<ConnVerdict> {
    conns
        .iter()
        .map(|c| {
            let assigned = addrs.contains(&c.local_addr);
            let module_sas = module_sas.iter().filter(|(s, d)| *s == c.local_addr || *d == c.local_addr).count();
            let problem = match (assigned, c.daemon_sees_addr) {
                (true, false) => Some(format!("{} is assigned here but the daemon does not act for it", c.local_addr)),
                (false, true) => Some(format!("{} is not assigned here but the daemon believes it is", c.local_addr)),
                (false, false) if c.ike_sas > 0 => {
                    Some(format!("{} is not assigned here but the daemon holds {} IKE SA(s) for it", c.local_addr, c.ike_sas))
                }
                (false, false) if module_sas > 0 => {
                    Some(format!("{} is not assigned here but the module holds {} SA(s) for it", c.local_addr, module_sas))
                }
                _ => None,
            };
            ConnVerdict { name: c.name.clone(), local_addr: c.local_addr, assigned, ike_sas: c.ike_sas, module_sas, problem }
        })
        .collect()
}

/// The connections in a daemon `status` answer.
pub fn conn_views(status: &Value) -> Vec<ConnView> {
    let sas = status.get("ike_sas").and_then(Value::as_array).cloned().unwrap_or_default();
    status
        .get("connections")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = c.get("name")?.as_str()?.to_owned();
            let local_addr = c.get("local_addr")?.as_str()?.parse().ok()?;
            let daemon_sees_addr = c.get("local_addr_present").and_then(Value::as_bool).unwrap_or(false);
            let ike_sas = sas.iter().filter(|s| s.get("conn").and_then(Value::as_str) == Some(name.as_str())).count();
            Some(ConnView { name, local_addr, daemon_sees_addr, ike_sas })
        })
        .collect()
}

fn module_sa_endpoints() -> Result<Vec<(IpAddr, IpAddr)>, genl::Error> {
    let mut c = Client::connect()?;
    let mut out = Vec::new();
    for m in c.dump(abi::CMD_SA_GET)? {
        let (mut src, mut dst) = (None, None);
        for a in &m.attrs {
            match genl::attr_kind(a) {
                abi::A_SRC => src = genl::attr_addr(a).ok(),
                abi::A_DST => dst = genl::attr_addr(a).ok(),
                _ => {}
            }
        }
        if let (Some(s), Some(d)) = (src, dst) {
            out.push((s, d));
        }
    }
    Ok(out)
}

fn report(json_out: bool, code: u8, summary: &str, detail: Value) -> u8 {
    if json_out {
        let mut v = json!({ "healthy": code == exit::OK, "code": code, "summary": summary });
        if let (Value::Object(o), Value::Object(d)) = (&mut v, detail) {
            o.extend(d);
        }
        println!("{v}");
    } else if code == exit::OK {
        println!("ripsec check: OK: {summary}");
    } else {
        eprintln!("ripsec check: FAILED: {summary}");
    }
    code
}

/// Runs the checks; returns the exit code.
pub fn run(socket: &Path, json_out: bool) -> u8 {
    let module = match stats::query() {
        Ok(m) => m,
        Err(e) => {
            let code = match e {
                genl::Error::ModuleNotLoaded => exit::MODULE_NOT_LOADED,
                genl::Error::PermissionDenied => exit::PERMISSION_DENIED,
                _ => exit::MODULE_NOT_LOADED,
            };
            return report(json_out, code, &format!("rust_ipsec module: {e}"), json!({ "module": false }));
        }
    };
    let status = match ctl::call_timeout(socket, &Request::Status, Duration::from_secs(5)) {
        Ok(v) => v,
        Err(e) => {
            let code = if e.code == exit::PERMISSION_DENIED { exit::PERMISSION_DENIED } else { exit::DAEMON_NOT_RUNNING };
            return report(json_out, code, &format!("daemon: {}", e.msg), json!({ "module": true, "daemon": false }));
        }
    };
    let addrs = match AddrWatch::new() {
        Ok(w) => w.current,
        Err(e) => return report(json_out, exit::ERROR, &format!("reading local addresses: {e}"), json!({})),
    };
    let sas = match module_sa_endpoints() {
        Ok(s) => s,
        Err(e) => return report(json_out, exit::MODULE_NOT_LOADED, &format!("listing SAs: {e}"), json!({ "module": false })),
    };
    let verdicts = evaluate(&conn_views(&status), &addrs, &sas);
    let problems: Vec<String> =
        verdicts.iter().filter_map(|v| v.problem.as_ref().map(|p| format!("connection '{}': {p}", v.name))).collect();
    let conns: Vec<Value> = verdicts
        .iter()
        .map(|v| {
            json!({ "name": v.name, "local_addr": v.local_addr.to_string(), "assigned": v.assigned,
                    "ike_sas": v.ike_sas, "module_sas": v.module_sas, "ok": v.problem.is_none(), "problem": v.problem })
        })
        .collect();
    if !json_out {
        for v in &verdicts {
            println!(
                "  {}: {} {} ({} IKE SA(s), {} module SA(s)){}",
                v.name,
                v.local_addr,
                if v.assigned { "assigned here: active" } else { "not here: standby" },
                v.ike_sas,
                v.module_sas,
                v.problem.as_ref().map(|p| format!(": INCONSISTENT: {p}")).unwrap_or_default()
            );
        }
    }
    let detail = json!({ "module": true, "module_version": module.version, "daemon": true, "connections": conns, "problems": problems });
    if problems.is_empty() {
        let active = verdicts.iter().filter(|v| v.assigned).count();
        report(json_out, exit::OK, &format!("module {} loaded, daemon responsive, {active}/{} connection(s) active here", module.version, verdicts.len()), detail)
    } else {
        report(json_out, exit::INCONSISTENT, &problems.join("; "), detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn conn(addr: &str, sees: bool, ike: usize) -> ConnView {
        ConnView { name: "pkgA".into(), local_addr: ip(addr), daemon_sees_addr: sees, ike_sas: ike }
    }
    const PKG: &str = "198.51.100.98";
    const CLIENT: &str = "198.51.100.10";

    #[test]
    fn active_node_with_sas_is_healthy() {
        let addrs = BTreeSet::from([ip(PKG)]);
        let v = evaluate(&[conn(PKG, true, 1)], &addrs, &[(ip(PKG), ip(CLIENT)), (ip(CLIENT), ip(PKG))]);
        assert_eq!(v[0].problem, None);
        assert!(v[0].assigned);
        assert_eq!(v[0].module_sas, 2);
    }

    #[test]
    fn clean_standby_is_healthy() {
        let v = evaluate(&[conn(PKG, false, 0)], &BTreeSet::new(), &[]);
        assert_eq!(v[0].problem, None);
        assert!(!v[0].assigned);
    }

    #[test]
    fn standby_with_ike_sa_is_inconsistent() {
        let v = evaluate(&[conn(PKG, false, 1)], &BTreeSet::new(), &[]);
        assert!(v[0].problem.as_deref().unwrap().contains("IKE SA"));
    }

    #[test]
    fn standby_with_module_sa_is_inconsistent() {
        let other = (ip("198.51.100.1"), ip(CLIENT));
        let v = evaluate(&[conn(PKG, false, 0)], &BTreeSet::new(), &[other, (ip(CLIENT), ip(PKG))]);
        assert_eq!(v[0].module_sas, 1);
        assert!(v[0].problem.as_deref().unwrap().contains("module holds 1 SA"));
    }

    #[test]
    fn address_here_but_daemon_unaware_is_inconsistent() {
        let v = evaluate(&[conn(PKG, false, 0)], &BTreeSet::from([ip(PKG)]), &[]);
        assert!(v[0].problem.as_deref().unwrap().contains("does not act"));
        let v = evaluate(&[conn(PKG, true, 0)], &BTreeSet::new(), &[]);
        assert!(v[0].problem.as_deref().unwrap().contains("believes"));
    }

    #[test]
    fn views_from_status_json() {
        let st = json!({ "ok": true,
            "connections": [{ "name": "pkgA", "local_addr": PKG, "local_addr_present": true },
                            { "name": "other", "local_addr": "2001:db8:1::98", "local_addr_present": false }],
            "ike_sas": [{ "conn": "pkgA", "state": "established" }, { "conn": "pkgA", "state": "connecting" }] });
        let v = conn_views(&st);
        assert_eq!(v, vec![
            ConnView { name: "pkgA".into(), local_addr: ip(PKG), daemon_sees_addr: true, ike_sas: 2 },
            ConnView { name: "other".into(), local_addr: ip("2001:db8:1::98"), daemon_sees_addr: false, ike_sas: 0 },
        ]);
    }
}
