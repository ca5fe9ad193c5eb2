//! `ripsec monitor`: prints the module's events (ACQUIRE, SPI_MISS, EXPIRE).

use std::time::{Duration, Instant};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use serde_json::Value;

use crate::abi;
use crate::genl::{Client, Error, RipsecMsg};
use crate::sa::describe;

/// Prints events until `count` were seen or `timeout` passed (both optional).
pub fn run(json: bool, count: Option<u64>, timeout: Option<f64>) -> Result<(), Error> {
    let sock = Client::connect()?.subscribe()?;
    // Scripts wait for this line before causing the events they expect.
    eprintln!("ripsec: monitoring rust_ipsec events");
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t));
    let mut seen = 0u64;
    let mut buf = vec![0u8; 65536];
    sock.set_non_blocking(deadline.is_some())?;
    loop {
        if count.is_some_and(|c| seen >= c) {
            return Ok(());
        }
        if let Some(d) = deadline {
            if Instant::now() >= d {
                return Ok(());
            }
        }
        let n = match sock.recv(&mut &mut buf[..], 0) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(Error::Io(e)),
        };
        let mut off = 0;
        while off < n {
            let msg = NetlinkMessage::<GenlMessage<RipsecMsg>>::deserialize(&buf[off..n])
                .map_err(|e| Error::Malformed(e.to_string()))?;
            let len = msg.header.length as usize;
            if len == 0 {
                break;
            }
            off += len;
            if let NetlinkPayload::InnerMessage(m) = msg.payload {
                let name = match m.payload.cmd {
                    abi::CMD_EV_ACQUIRE => "acquire",
                    abi::CMD_EV_SPI_MISS => "spi_miss",
                    abi::CMD_EV_EXPIRE => "expire",
                    _ => continue,
                };
                let mut v = describe(&m.payload)?;
                if let Value::Object(o) = &mut v {
                    o.insert("event".into(), name.into());
                }
                if json {
                    println!("{v}");
                } else {
                    let fields: Vec<String> = v
                        .as_object()
                        .map(|o| o.iter().filter(|(k, _)| *k != "event").map(|(k, x)| format!("{k}={}", x.as_str().map_or(x.to_string(), str::to_string))).collect())
                        .unwrap_or_default();
                    println!("{name} {}", fields.join(" "));
                }
                seen += 1;
                use std::io::Write;
                let _ = std::io::stdout().flush();
            }
        }
    }
}
