//! The `rust_ipsec` generic netlink ABI: the module's own constants file
//! (`rust_ipsec/abi.rs`), checked here against the C uapi header.

#[path = "../../../rust_ipsec/abi.rs"]
mod shared;
pub(crate) use shared::*;

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
            .map(|l| l.split("/*").next().unwrap())
            .flat_map(|l| l.split(','))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    }

    fn value_of(list: &[String], name: &str) -> usize {
        list.iter().position(|n| n == name).unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn family_name_and_version_match_header() {
        assert!(HEADER.contains(&format!("#define RIPSEC_GENL_NAME\t\"{GENL_NAME}\"")));
        assert!(HEADER.contains(&format!("#define RIPSEC_GENL_VERSION\t{GENL_VERSION}")));
        assert!(HEADER.contains(&format!("#define RIPSEC_MCGRP_EVENTS\t\"{MCGRP_EVENTS}\"")));
    }

    #[test]
    fn commands_match_header() {
        let cmds = c_enum("ripsec_cmd");
        assert_eq!(C_CMDS.len() + 2, cmds.len(), "every command is mirrored");
        for (name, v) in C_CMDS {
            assert_eq!(value_of(&cmds, name), *v as usize, "{name}");
        }
    }

    #[test]
    fn attributes_match_header() {
        let attrs = c_enum("ripsec_attr");
        assert_eq!(C_ATTRS.len() + 2, attrs.len(), "every attribute is mirrored");
        for (name, v) in C_ATTRS {
            assert_eq!(value_of(&attrs, name), *v as usize, "{name}");
        }
        assert_eq!(A_MAX as usize, attrs.len() - 2);
    }

    #[test]
    fn enums_match_header() {
        let alg = c_enum("ripsec_alg");
        assert_eq!(value_of(&alg, "RIPSEC_ALG_AES128_GCM16"), ALG_AES128_GCM16 as usize);
        assert_eq!(value_of(&alg, "RIPSEC_ALG_AES256_GCM16"), ALG_AES256_GCM16 as usize);
        assert_eq!(value_of(&alg, "RIPSEC_ALG_CHACHA20_POLY1305"), ALG_CHACHA20_POLY1305 as usize);
        let dir = c_enum("ripsec_dir");
        assert_eq!(value_of(&dir, "RIPSEC_DIR_OUT"), DIR_OUT as usize);
        assert_eq!(value_of(&dir, "RIPSEC_DIR_FWD"), DIR_FWD as usize);
        let act = c_enum("ripsec_action");
        assert_eq!(value_of(&act, "RIPSEC_ACTION_PROTECT"), ACTION_PROTECT as usize);
        let st = c_enum("ripsec_sa_stat");
        assert_eq!(st.len() - 1, SA_STAT_COUNT);
        assert_eq!(value_of(&st, "RIPSEC_SA_STAT_SEQ"), SA_STAT_SEQ as usize);
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
