//! `ripsec stats`: the module's version, crypto backend and per-namespace counters.

use serde::Serialize;

use crate::abi;
use crate::genl::{self, Client, Error};

#[derive(Debug, Serialize)]
pub struct ModuleStatus {
    pub version: String,
    pub backend: String,
    pub netns_cookie: u64,
    /// Counter name and value, in the module's order.
    pub counters: Vec<(String, u64)>,
}

pub fn query() -> Result<ModuleStatus, Error> {
    let mut client = Client::connect()?;
    let replies = client.request(abi::CMD_GET_STATUS, Vec::new())?;
    let reply = replies
        .into_iter()
        .next()
        .ok_or_else(|| Error::Malformed("no reply to GET_STATUS".into()))?;
    let mut st = ModuleStatus {
        version: String::new(),
        backend: String::new(),
        netns_cookie: 0,
        counters: Vec::new(),
    };
    for nla in &reply.attrs {
        match genl::attr_kind(nla) {
            abi::A_VERSION => st.version = genl::attr_string(nla)?,
            abi::A_BACKEND => st.backend = genl::attr_string(nla)?,
            abi::A_NETNS_COOKIE => st.netns_cookie = genl::attr_u64(nla)?,
            abi::A_COUNTERS => {
                for c in genl::parse_attrs(&genl::attr_bytes(nla))
                    .map_err(|e| Error::Malformed(e.to_string()))?
                {
                    let idx = usize::from(genl::attr_kind(&c)).wrapping_sub(1);
                    let name = abi::COUNTERS
                        .get(idx)
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| format!("counter_{}", genl::attr_kind(&c)));
                    st.counters.push((name, genl::attr_u64(&c)?));
                }
            }
            _ => {}
        }
    }
    if st.version.is_empty() {
        return Err(Error::Malformed("GET_STATUS reply without a version".into()));
    }
    Ok(st)
}

pub fn print(st: &ModuleStatus, json: bool) {
    if json {
        let counters: serde_json::Map<String, serde_json::Value> =
            st.counters.iter().map(|(k, v)| (k.clone(), (*v).into())).collect();
        let v = serde_json::json!({
            "module": {
                "version": st.version,
                "backend": st.backend,
                "netns_cookie": st.netns_cookie,
            },
            "counters": counters,
        });
        println!("{v}");
        return;
    }
    println!("rust_ipsec {} (crypto: {}, netns cookie {})", st.version, st.backend, st.netns_cookie);
    for (name, value) in &st.counters {
        println!("  {name:<20} {value}");
    }
}
