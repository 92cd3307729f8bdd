//! README.md's promise that every flag it names exists: checked against the CLI itself.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;

/// Flags of other tools the README quotes (cargo's, ipset's and nft's).
const FOREIGN: &[&str] = &[
    "--release",
    "--test",
    "--nocapture",
    "--example",
    "--exist",
    "--debug",
    // etcd's own.
    "--max-txn-ops",
    "--client-cert-auth",
];

/// Every `--flag` of a command and its subcommands.
fn flags(command: &clap::Command, into: &mut BTreeSet<String>) {
    for arg in command.get_arguments() {
        if let Some(long) = arg.get_long() {
            into.insert(format!("--{long}"));
        }
    }
    for sub in command.get_subcommands() {
        flags(sub, into);
    }
}

/// The text of every `.rs` file under `dir`.
fn sources(dir: &Path, into: &mut String) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

/// Each `--flag` the README names is a flag of `egress-bench` (any subcommand), a field of
/// `cargo xtask`'s options (clap names `--no-send-path` after `no_send_path`), an example's
/// argument, or another tool's flag it quotes.
#[test]
fn every_flag_the_readme_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut ours = BTreeSet::new();
    flags(&crate::Cli::command(), &mut ours);
    let mut xtask = String::new();
    sources(&root.join("xtask/src"), &mut xtask);
    let mut examples = String::new();
    for crate_dir in ["engines", "profiles"] {
        sources(&root.join(crate_dir), &mut examples);
    }
    let mut missing = Vec::new();
    let named: BTreeSet<&str> = readme
        .match_indices("--")
        .filter_map(|(at, _)| {
            let rest = &readme[at + 2..];
            let len = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                .unwrap_or(rest.len());
            let before = readme[..at].chars().next_back();
            (len > 0 && rest.starts_with(|c: char| c.is_ascii_lowercase()) && before != Some('-'))
                .then(|| &readme[at..at + 2 + len])
        })
        .collect();
    assert!(named.len() > 20, "{named:?}");
    for flag in named {
        let field = format!("pub {}:", flag[2..].replace('-', "_"));
        let known = ours.contains(flag)
            || FOREIGN.contains(&flag)
            || xtask.contains(&field)
            || examples.contains(&format!("\"{flag}\""));
        if !known {
            missing.push(flag);
        }
    }
    assert!(
        missing.is_empty(),
        "README.md names flags no command has: {missing:?}"
    );
}
