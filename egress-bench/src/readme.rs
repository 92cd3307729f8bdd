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

/// The README's command reference: every subcommand, each flag with its default and the
/// first sentence of its help, generated from the CLI so that no default can drift.
fn reference() -> String {
    let mut cli = crate::Cli::command();
    // Built, each argument knows whether it takes a value.
    cli.build();
    let mut out = String::from(
        "Generated from the CLI (a test fails when this section and the CLI's own help \
         differ; `EGB_BLESS=1 cargo test -p egress-bench readme` rewrites it).\n",
    );
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let about = sub
            .get_about()
            .map(|a| first_sentence(&a.to_string()))
            .unwrap_or_default();
        out.push_str(&format!(
            "\n### `egress-bench {}`\n\n{about}\n\n",
            sub.get_name()
        ));
        let positionals: Vec<String> = sub
            .get_positionals()
            .map(|a| format!("`{}`", a.get_id().as_str().to_uppercase()))
            .collect();
        if !positionals.is_empty() {
            out.push_str(&format!("Arguments: {}.\n\n", positionals.join(", ")));
        }
        out.push_str("| flag | default | what |\n|---|---|---|\n");
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let Some(long) = arg.get_long() else {
                continue;
            };
            if long == "help" || long == "version" {
                continue;
            }
            let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
            let flag = if takes_value {
                let name = arg
                    .get_value_names()
                    .and_then(|n| n.first())
                    .map_or_else(|| long.to_uppercase(), ToString::to_string);
                format!("`--{long} <{name}>`")
            } else {
                format!("`--{long}`")
            };
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = if defaults.is_empty() || !takes_value {
                "-".to_owned()
            } else {
                format!("`{}`", defaults.join(","))
            };
            let mut what = arg
                .get_help()
                .map(|h| first_sentence(&h.to_string()))
                .unwrap_or_default();
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| format!("`{}`", v.get_name()))
                .collect();
            if takes_value && !values.is_empty() && values.len() <= 12 {
                what.push_str(&format!(" One of {}.", values.join(", ")));
            }
            out.push_str(&format!(
                "| {flag} | {default} | {} |\n",
                what.replace('|', "\\|")
            ));
        }
    }
    out
}

/// The first sentence of a help text, on one line.
fn first_sentence(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.find(". ") {
        Some(end) => text[..=end].to_owned(),
        None => text,
    }
}

const REFERENCE_START: &str =
    "<!-- command reference: generated, see egress-bench/src/readme.rs -->\n";
const REFERENCE_END: &str = "<!-- end of command reference -->\n";

/// README.md's command reference is the CLI's own: every flag and default of every
/// subcommand (`EGB_BLESS=1` rewrites it).
#[test]
fn the_command_reference_matches_the_cli() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let expected = reference();
    let (Some(start), Some(end)) = (readme.find(REFERENCE_START), readme.find(REFERENCE_END))
    else {
        panic!("README.md has no command reference between its markers");
    };
    let current = &readme[start + REFERENCE_START.len()..end];
    if current == expected {
        return;
    }
    if std::env::var_os("EGB_BLESS").is_some() {
        let updated = format!(
            "{}{REFERENCE_START}{expected}{}",
            &readme[..start],
            &readme[end..]
        );
        std::fs::write(&path, updated).unwrap();
        return;
    }
    let first_difference = current
        .lines()
        .zip(expected.lines())
        .find(|(a, b)| a != b)
        .map_or_else(
            || "(one is longer)".to_owned(),
            |(a, b)| format!("README: {a}\nCLI:    {b}"),
        );
    panic!(
        "README.md's command reference differs from the CLI; run `EGB_BLESS=1 cargo test -p \
         egress-bench readme` to rewrite it. First difference:\n{first_difference}"
    );
}
