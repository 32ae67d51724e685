//! `completions` and `man`: the scripts a shell loads and the pages `man`
//! renders, checked with the real bash and man-db.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};

const OLIVE: &str = env!("CARGO_BIN_EXE_olive2022");

/// The visible subcommands every script and page must name.
const SUBCOMMANDS: [&str; 12] = [
    "install",
    "tier1",
    "uninstall",
    "launch",
    "stage2",
    "convert",
    "uuid",
    "extract",
    "cloudlet",
    "demo",
    "completions",
    "man",
];

fn olive(args: &[&str]) -> Output {
    let output = Command::new(OLIVE)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn bash_sources_the_script_and_registers_the_completion() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("olive2022.bash");
    std::fs::write(&script, olive(&["completions", "bash"]).stdout).unwrap();
    // `set -e`: a syntax error in the script fails the shell.
    let output = Command::new("bash")
        .arg("--norc")
        .arg("-ec")
        .arg(r#"source "$1"; complete -p olive2022"#)
        .arg("bash")
        .arg(&script)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(shown.contains("-F _olive2022 olive2022"), "{shown}");
    assert!(output.stderr.is_empty(), "{output:?}");
}

#[test]
fn bash_completes_subcommands_and_convert_flags() {
    let script = stdout(&olive(&["completions", "bash"]));
    // Ask the completion function itself, as bash does on Tab.
    let ask = |words: &str| {
        let program = format!(
            r#"{script}
COMP_WORDS=({words}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
_olive2022 olive2022 "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#
        );
        let output = Command::new("bash")
            .args(["--norc", "-c", &program])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let replies = ask("olive2022 ''");
    for name in SUBCOMMANDS {
        assert!(
            replies.lines().any(|line| line == name),
            "{name}: {replies}"
        );
    }
    let replies = ask("olive2022 convert --ins");
    assert_eq!(replies.trim(), "--insecure-registry");
}

#[test]
fn zsh_and_fish_scripts_name_the_subcommands() {
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = stdout(&olive(&["completions", shell]));
        for name in SUBCOMMANDS {
            assert!(script.contains(name), "{shell} lacks {name}");
        }
        assert!(
            !script.contains("rfb-snapshot"),
            "{shell} shows a hidden command"
        );
    }
    assert!(stdout(&olive(&["completions", "zsh"])).starts_with("#compdef olive2022"));
    let fish = stdout(&olive(&["completions", "fish"]));
    assert!(fish.contains("complete -c olive2022"), "{fish}");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let output = Command::new(OLIVE)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// `man -l FILE` rendered as plain text (no pager, no terminal width).
fn render(page: &std::path::Path) -> String {
    let output = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "200")
        .env("MAN_KEEP_FORMATTING", "")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert!(output.status.success(), "{page:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn man_writes_one_page_per_subcommand_that_man_renders() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let listed = stdout(&olive(&["man", "--dir", out.to_str().unwrap()]));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<String> = SUBCOMMANDS
        .iter()
        .map(|name| format!("olive2022-{name}.1"))
        .chain(["olive2022.1".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(listed.lines().count(), expected.len(), "{listed}");

    let main = render(&out.join("olive2022.1"));
    for name in SUBCOMMANDS {
        assert!(main.contains(name), "{name}: {main}");
    }
    assert!(
        main.contains("--verbose") && main.contains("--dry-run"),
        "{main}"
    );
    let convert = render(&out.join("olive2022-convert.1"));
    for part in [
        "olive2022-convert",
        "--registry",
        "OLIVE2022_REGISTRY",
        "--insecure-registry",
        "--json",
        "VMNETX_URL",
        "--verbose",
    ] {
        assert!(convert.contains(part), "{part}: {convert}");
    }
}

#[test]
fn man_without_a_directory_prints_the_main_page() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("olive2022.1");
    std::fs::write(&page, olive(&["man"]).stdout).unwrap();
    let text = render(&page);
    assert!(
        text.contains("olive2022") && text.contains("convert"),
        "{text}"
    );
    assert!(!text.contains("rfb-snapshot"), "{text}");
}
