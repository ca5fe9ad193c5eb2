//! The `rust_ipsec` generic netlink ABI, mirrored from
//! `rust_ipsec/uapi/rust_ipsec.h`. The test at the bottom parses that header so
//! the two cannot drift apart silently.

pub const GENL_NAME: &str = "rust_ipsec";
pub const GENL_VERSION: u8 = 1;

pub const CMD_GET_STATUS: u8 = 1;

/// Alignment padding for u64 attributes; never carries data.
#[allow(dead_code)]
pub const A_PAD: u16 = 1;
pub const A_VERSION: u16 = 2;
pub const A_BACKEND: u16 = 3;
pub const A_NETNS_COOKIE: u16 = 4;
pub const A_COUNTERS: u16 = 5;

/// Counter names in `enum ripsec_counter` order; inside `RIPSEC_A_COUNTERS` the
/// attribute type is the index + 1.
pub const COUNTERS: &[&str] = &[
    "nl_requests",
    "in_packets",
    "in_bytes",
    "out_packets",
    "out_bytes",
    "in_no_sa",
    "in_auth_fail",
    "in_replay",
    "in_too_old",
    "in_malformed",
    "in_policy_drop",
    "out_no_sa",
    "out_seq_exhausted",
    "out_errors",
    "events_dropped",
];

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = include_str!("../../../rust_ipsec/uapi/rust_ipsec.h");

    /// Enumerator names of `enum NAME { ... }` in declaration order.
    fn c_enum(name: &str) -> Vec<String> {
        let start = HEADER
            .find(&format!("enum {name} {{"))
            .unwrap_or_else(|| panic!("enum {name} not in header"));
        let body = &HEADER[start..];
        let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
        body.lines()
            .map(|l| l.split("/*").next().unwrap().trim().trim_end_matches(','))
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn value_of(list: &[String], name: &str) -> usize {
        list.iter().position(|n| n == name).unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn family_name_and_version_match_header() {
        assert!(HEADER.contains(&format!("#define RIPSEC_GENL_NAME\t\"{GENL_NAME}\"")));
        assert!(HEADER.contains(&format!("#define RIPSEC_GENL_VERSION\t{GENL_VERSION}")));
    }

    #[test]
    fn commands_match_header() {
        let cmds = c_enum("ripsec_cmd");
        assert_eq!(value_of(&cmds, "RIPSEC_CMD_GET_STATUS"), CMD_GET_STATUS as usize);
    }

    #[test]
    fn attributes_match_header() {
        let attrs = c_enum("ripsec_attr");
        for (name, v) in [
            ("RIPSEC_A_PAD", A_PAD),
            ("RIPSEC_A_VERSION", A_VERSION),
            ("RIPSEC_A_BACKEND", A_BACKEND),
            ("RIPSEC_A_NETNS_COOKIE", A_NETNS_COOKIE),
            ("RIPSEC_A_COUNTERS", A_COUNTERS),
        ] {
            assert_eq!(value_of(&attrs, name), v as usize, "{name}");
        }
    }

    #[test]
    fn counters_match_header() {
        let ctrs: Vec<String> = c_enum("ripsec_counter")
            .into_iter()
            .filter(|n| !n.starts_with("__"))
            .map(|n| n.trim_start_matches("RIPSEC_CTR_").to_ascii_lowercase())
            .collect();
        assert_eq!(ctrs, COUNTERS);
    }
}
