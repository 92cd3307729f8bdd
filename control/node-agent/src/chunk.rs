//! One key's value: a chunk of the deny-list, as plain lines (the `--cidrs` format) or as
//! Calico's GlobalNetworkSet resource the way Calico's etcd datastore stores it (JSON with
//! `spec.nets`).

use filter_core::{CidrList, ParseOptions};
use ipnet::IpNet;

/// Why a chunk was refused: its key and what is wrong, naming the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError {
    /// The etcd key.
    pub key: String,
    /// What is wrong (the line and its text, or the JSON problem).
    pub problem: String,
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chunk {}: {}", self.key, self.problem)
    }
}

impl std::error::Error for ChunkError {}

/// The entries of the chunk stored at `key`. A value starting with `{` is read as a
/// GlobalNetworkSet (`spec.nets`, each an address or CIDR; `nets[i]` named on error); any
/// other value as lines.
///
/// # Errors
/// [`ChunkError`] naming the key and the first bad line or net.
pub fn parse(key: &str, value: &[u8]) -> Result<Vec<IpNet>, ChunkError> {
    let refused = |problem: String| ChunkError {
        key: key.to_owned(),
        problem,
    };
    if value.trim_ascii_start().starts_with(b"{") {
        return network_set(value).map_err(refused);
    }
    CidrList::parse(value, key, &ParseOptions::default())
        .map(|list| list.iter().collect())
        .map_err(|e| refused(e.to_string()))
}

/// The nets of a GlobalNetworkSet resource.
fn network_set(value: &[u8]) -> Result<Vec<IpNet>, String> {
    #[derive(serde::Deserialize)]
    struct Resource {
        kind: Option<String>,
        spec: Spec,
    }
    #[derive(serde::Deserialize)]
    struct Spec {
        #[serde(default)]
        nets: Vec<String>,
    }
    let resource: Resource = serde_json::from_slice(value)
        .map_err(|e| format!("not a GlobalNetworkSet resource (JSON with spec.nets): {e}"))?;
    if let Some(kind) = resource.kind.filter(|k| k != "GlobalNetworkSet") {
        return Err(format!("a {kind} resource, not a GlobalNetworkSet"));
    }
    resource
        .spec
        .nets
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let list = CidrList::parse(text.as_bytes(), "net", &ParseOptions::default())
                .map_err(|e| format!("spec.nets[{i}] {text:?}: {e}"))?;
            match list.iter().collect::<Vec<_>>()[..] {
                [net] => Ok(net),
                _ => Err(format!(
                    "spec.nets[{i}] {text:?} is not one address or CIDR"
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_with_comments() {
        let nets = parse("/p/0", b"# feed\n203.0.113.0/24\n2001:db8::/32 ; v6\n\n").unwrap();
        assert_eq!(nets.len(), 2);
    }

    #[test]
    fn a_bad_line_is_named_with_its_key() {
        let err = parse("/p/7", b"203.0.113.0/24\nnot-an-address\n").unwrap_err();
        assert_eq!(err.key, "/p/7");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn a_global_network_set_gives_its_nets() {
        let value = br#"{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3",
            "metadata":{"name":"threats","labels":{"feed":"x"}},
            "spec":{"nets":["198.51.100.0/24","203.0.113.7","2001:db8::/48"]}}"#;
        let nets = parse(
            "/calico/resources/v3/projectcalico.org/globalnetworksets/threats",
            value,
        )
        .unwrap();
        assert_eq!(nets.len(), 3);
        assert!(nets.contains(&"203.0.113.7/32".parse().unwrap()));
    }

    #[test]
    fn a_bad_net_of_a_resource_is_named() {
        let value =
            br#"{"kind":"GlobalNetworkSet","spec":{"nets":["198.51.100.0/24","300.1.1.1"]}}"#;
        let err = parse("/gns/a", value).unwrap_err();
        assert!(err.to_string().contains("spec.nets[1]"), "{err}");
        let other = parse("/gns/b", br#"{"kind":"NetworkPolicy","spec":{}}"#).unwrap_err();
        assert!(other.to_string().contains("NetworkPolicy"), "{other}");
    }
}
