//! `install` and `uninstall` of the desktop handler, in temporary XDG
//! directories, checked by the desktop's own tools: `desktop-file-validate`,
//! `xdg-mime`, `xdg-open` and GLib's `gio` (what browsers use). A hostile URL
//! goes through real launchers and must reach us as one inert argument.
//! A missing tool fails the test naming its Debian package.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_olive2022");
const SCHEMES: [&str; 3] = [
    "x-scheme-handler/vmnetx",
    "x-scheme-handler/vmnetx+http",
    "x-scheme-handler/vmnetx+https",
];

/// Fails, naming the Debian package, when `tool` is not installed.
fn require(tool: &str, package: &str) -> PathBuf {
    ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(tool))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!("`{tool}` is missing: install the Debian package {package} (scripts/setup.sh)")
        })
}

/// A home, XDG directories, and stub terminals, all in a temporary
/// directory; nothing outside it is read or written.
struct Desk {
    temp: tempfile::TempDir,
}

impl Desk {
    fn new() -> Desk {
        let desk = Desk {
            temp: tempfile::tempdir().unwrap(),
        };
        for dir in ["home", "data", "config", "sys1", "sys2", "etc-xdg", "stubs"] {
            std::fs::create_dir_all(desk.path(dir)).unwrap();
        }
        desk.stub_terminals();
        desk
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.temp.path().join(relative)
    }

    fn user_entry(&self) -> PathBuf {
        self.path("data/applications/olive2022.desktop")
    }

    fn user_mimeapps(&self) -> PathBuf {
        self.path("config/mimeapps.list")
    }

    /// A command with only this desk's environment.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let path = format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            self.path("stubs").display()
        );
        command
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.path("home"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env(
                "XDG_DATA_DIRS",
                format!(
                    "{}:{}",
                    self.path("sys1").display(),
                    self.path("sys2").display()
                ),
            )
            .env("XDG_CONFIG_DIRS", self.path("etc-xdg"))
            .env("OLIVE2022_TEST_DIR", self.temp.path())
            .stdin(Stdio::null());
        command
    }

    fn run(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
        self.command(program).args(args).output().unwrap()
    }

    fn olive(&self, args: &[&str]) -> Output {
        let output = self.run(BIN, args);
        assert!(
            output.status.success(),
            "olive2022 {args:?}: {}",
            text(&output)
        );
        output
    }

    fn default_handler(&self, mime: &str) -> String {
        require("xdg-mime", "xdg-utils");
        let output = self.run("xdg-mime", &["query", "default", mime]);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Stand-ins for every terminal that GLib and xdg-open may pick: each
    /// records the command it was given (NUL-separated) and runs it with
    /// `-n` after the program, so that `launch` only says what it would do.
    fn stub_terminals(&self) {
        let script = self.path("stubs/terminal");
        std::fs::write(
            &script,
            "#!/bin/sh\n\
             case \"$1\" in -e|-x|--) shift ;; esac\n\
             printf '%s\\0' \"$@\" > \"$OLIVE2022_TEST_DIR/argv\"\n\
             program=$1; shift\n\
             \"$program\" -n \"$@\" > \"$OLIVE2022_TEST_DIR/out\" 2>&1\n\
             echo $? > \"$OLIVE2022_TEST_DIR/done\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in [
            "x-terminal-emulator",
            "xdg-terminal-exec",
            "gnome-terminal",
            "mate-terminal",
            "xfce4-terminal",
            "tilix",
            "konsole",
            "nxterm",
            "color-xterm",
            "rxvt",
            "dtterm",
            "xterm",
        ] {
            std::os::unix::fs::symlink("terminal", self.path("stubs").join(name)).unwrap();
        }
    }

    /// Waits for the stub terminal to finish; returns the command it ran
    /// and that command's output.
    fn terminal_ran(&self) -> (Vec<String>, String) {
        let started = Instant::now();
        while !self.path("done").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no terminal was started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let argv = std::fs::read_to_string(self.path("argv")).unwrap();
        let out = std::fs::read_to_string(self.path("out")).unwrap();
        for file in ["argv", "out", "done"] {
            std::fs::remove_file(self.path(file)).unwrap();
        }
        (
            argv.split_terminator('\0').map(str::to_owned).collect(),
            out,
        )
    }

    /// Every file under the desk (but the stubs) with its contents.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, files);
                    files.insert(path, Vec::new());
                } else if path.is_file() {
                    files.insert(path.clone(), std::fs::read(&path).unwrap());
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(self.temp.path(), &mut files);
        files.retain(|path, _| !path.starts_with(self.path("stubs")));
        files
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn validate(entry: &Path) {
    let tool = require("desktop-file-validate", "desktop-file-utils");
    let output = Command::new(tool).arg(entry).output().unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty(),
        "desktop-file-validate {}: {}",
        entry.display(),
        text(&output)
    );
}

/// The value of `key` in the `[Desktop Entry]` group, string escapes
/// undone (`\s \n \t \r \\`), as the Desktop Entry spec says.
fn entry_value(entry: &str, key: &str) -> String {
    let raw = entry
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in\n{entry}"));
    let mut value = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => value.push(' '),
            Some('n') => value.push('\n'),
            Some('t') => value.push('\t'),
            Some('r') => value.push('\r'),
            Some('\\') => value.push('\\'),
            other => panic!("bad escape \\{other:?} in {raw}"),
        }
    }
    value
}

/// Splits an `Exec` value into arguments by the Desktop Entry spec's
/// quoting rules, written here independently of the code under test:
/// reserved characters only inside `"…"`, where `\"`, `` \` ``, `\$` and
/// `\\` stand for themselves; `%%` is a literal `%` and `%u` stays a field
/// code (it may not appear inside quotes).
fn exec_argv(exec: &str) -> Vec<String> {
    const RESERVED: &str = " \t\n\"'\\><~|&;$*?#()`";
    let mut args = Vec::new();
    let mut chars = exec.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ').is_some() {}
        let Some(&first) = chars.peek() else {
            return args;
        };
        let mut arg = String::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next().expect("unterminated quote") {
                    '"' => break,
                    '\\' => {
                        let escaped = chars.next().expect("dangling backslash");
                        assert!("\"`$\\".contains(escaped), "bad escape \\{escaped}");
                        arg.push(escaped);
                    }
                    '%' => {
                        assert_eq!(chars.next(), Some('%'), "field code inside quotes");
                        arg.push('%');
                    }
                    c => arg.push(c),
                }
            }
            assert!(matches!(chars.peek(), None | Some(' ')), "junk after quote");
        } else {
            while let Some(c) = chars.next_if(|c| *c != ' ') {
                assert!(!RESERVED.contains(c), "unquoted reserved {c:?} in {exec}");
                if c == '%' {
                    match chars.next() {
                        Some('%') => arg.push('%'),
                        Some(code) => {
                            arg.push('%');
                            arg.push(code);
                        }
                        None => panic!("lone % in {exec}"),
                    }
                } else {
                    arg.push(c);
                }
            }
        }
        args.push(arg);
    }
}

fn installed_argv(entry: &Path) -> Vec<String> {
    let content = std::fs::read_to_string(entry).unwrap();
    exec_argv(&entry_value(&content, "Exec"))
}

#[test]
fn install_makes_a_valid_default_handler_and_keeps_other_entries() {
    let desk = Desk::new();
    let mimeapps = desk.user_mimeapps();
    std::fs::write(
        &mimeapps,
        "# my own notes\n\
         [Default Applications]\n\
         text/html=firefox.desktop;\n\
         x-scheme-handler/vmnetx=older-viewer.desktop;\n\
         \n\
         [Removed Associations]\n\
         x-scheme-handler/vmnetx+https=olive2022.desktop;other.desktop;\n\
         \n\
         [Added Associations]\n\
         image/png=gimp.desktop;eog.desktop;\n",
    )
    .unwrap();
    std::fs::set_permissions(&mimeapps, std::fs::Permissions::from_mode(0o600)).unwrap();

    let output = desk.olive(&["install"]);
    assert!(text(&output).contains("Installed"), "{}", text(&output));

    let entry = desk.user_entry();
    validate(&entry);
    let content = std::fs::read_to_string(&entry).unwrap();
    for line in [
        "[Desktop Entry]",
        "Type=Application",
        "Terminal=true",
        "NoDisplay=true",
        "MimeType=x-scheme-handler/vmnetx;x-scheme-handler/vmnetx+http;\
         x-scheme-handler/vmnetx+https;",
        "Categories=Network;RemoteAccess;",
    ] {
        assert!(content.lines().any(|l| l == line), "{line}:\n{content}");
    }
    let exe = std::fs::canonicalize(BIN).unwrap();
    assert_eq!(
        installed_argv(&entry),
        [exe.to_str().unwrap(), "launch", "%u"]
    );
    assert_eq!(entry_value(&content, "TryExec"), exe.to_str().unwrap());
    assert_eq!(
        std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777,
        0o644
    );

    // The desktop's tools agree that we are the default handler.
    for mime in SCHEMES {
        assert_eq!(desk.default_handler(mime), "olive2022.desktop", "{mime}");
    }
    require("gio", "libglib2.0-bin");
    for mime in SCHEMES {
        let output = desk.run("gio", &["mime", mime]);
        let said = text(&output);
        assert!(
            said.lines()
                .next()
                .is_some_and(|line| line.ends_with(": olive2022.desktop")),
            "gio mime {mime}: {said}"
        );
    }
    // Other lines survive; the older handler comes after us; we are no
    // longer a removed association; the file keeps its permissions.
    let list = std::fs::read_to_string(&mimeapps).unwrap();
    for line in [
        "# my own notes",
        "text/html=firefox.desktop;",
        "image/png=gimp.desktop;eog.desktop;",
        "x-scheme-handler/vmnetx=olive2022.desktop;older-viewer.desktop;",
        "x-scheme-handler/vmnetx+https=other.desktop;",
    ] {
        assert!(list.lines().any(|l| l == line), "{line}:\n{list}");
    }
    assert_eq!(
        std::fs::metadata(&mimeapps).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // update-desktop-database refreshed the cache.
    let cache = std::fs::read_to_string(desk.path("data/applications/mimeinfo.cache"))
        .expect("update-desktop-database (desktop-file-utils) did not run");
    assert!(cache.contains("x-scheme-handler/vmnetx+https=olive2022.desktop;"));

    // Installing again changes nothing in mimeapps.list.
    desk.olive(&["install", "-q"]);
    assert_eq!(std::fs::read_to_string(&mimeapps).unwrap(), list);
}

#[test]
fn convert_variant_and_reinstall_replace_the_entry() {
    let desk = Desk::new();
    let exe = std::fs::canonicalize(BIN).unwrap();
    let exe = exe.to_str().unwrap();
    desk.olive(&["install", "--convert"]);
    validate(&desk.user_entry());
    assert_eq!(installed_argv(&desk.user_entry()), [exe, "convert", "%u"]);
    desk.olive(&["install", "--user"]);
    assert_eq!(installed_argv(&desk.user_entry()), [exe, "launch", "%u"]);
    // One line per scheme and section, not one per install.
    let list = std::fs::read_to_string(desk.user_mimeapps()).unwrap();
    assert_eq!(
        list,
        "[Default Applications]\n\
         x-scheme-handler/vmnetx=olive2022.desktop;\n\
         x-scheme-handler/vmnetx+http=olive2022.desktop;\n\
         x-scheme-handler/vmnetx+https=olive2022.desktop;\n\
         \n\
         [Added Associations]\n\
         x-scheme-handler/vmnetx=olive2022.desktop;\n\
         x-scheme-handler/vmnetx+http=olive2022.desktop;\n\
         x-scheme-handler/vmnetx+https=olive2022.desktop;\n"
    );
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(desk.path("data/applications"))
        .unwrap()
        .chain(std::fs::read_dir(desk.path("config")).unwrap())
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with(".olive2022-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The URL of the original's defect 5: quotes, `;`, `$(…)`, backticks and
/// percent signs that a shell or a sloppy `%u` expansion would act on.
fn hostile_url(desk: &Desk) -> String {
    let pwned = desk.path("PWNED");
    let pwned = pwned.display();
    format!(
        "vmnetx+https://x/'; touch {pwned}1; echo '$(touch {pwned}2)\"`touch {pwned}3`\"; \
         touch {pwned}4 #%u %% %s\\"
    )
}

fn assert_not_pwned(desk: &Desk) {
    let pwned: Vec<_> = std::fs::read_dir(desk.temp.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with("PWNED"))
        .collect();
    assert!(pwned.is_empty(), "the URL ran commands: {pwned:?}");
}

/// Checks what a launcher started: exactly `[exe, "launch", url]`, and
/// `olive2022 -n launch url` worked on the whole URL (the UUID it prints
/// is the one of the URL given directly).
fn assert_inert(desk: &Desk, argv: &[String], out: &str, exe: &str, url: &str) {
    assert_eq!(argv, [exe, "launch", url]);
    let uuid = desk.olive(&["uuid", url]);
    let uuid = String::from_utf8_lossy(&uuid.stdout);
    assert!(out.contains(uuid.trim()), "{out}");
    assert_not_pwned(desk);
}

#[test]
fn a_hostile_url_reaches_us_as_one_inert_argument() {
    let desk = Desk::new();
    require("gio", "libglib2.0-bin");
    require("xdg-open", "xdg-utils");
    let url = hostile_url(&desk);
    let exe = std::fs::canonicalize(BIN).unwrap();
    let exe = exe.to_str().unwrap();
    desk.olive(&["install"]);

    // By the spec: the Exec line's argv with %u replaced, run directly.
    let mut argv = installed_argv(&desk.user_entry());
    assert_eq!(argv, [exe, "launch", "%u"]);
    argv[2] = url.clone();
    let output = desk
        .command(&argv[0])
        .arg("-n")
        .args(&argv[1..])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_inert(&desk, &argv, &text(&output), exe, &url);

    // GLib, as browsers use it: the entry itself, and the default handler.
    let entry = desk.user_entry();
    let output = desk.run("gio", &["launch", entry.to_str().unwrap(), &url]);
    assert!(output.status.success(), "gio launch: {}", text(&output));
    let (argv, out) = desk.terminal_ran();
    assert_inert(&desk, &argv, &out, exe, &url);

    let output = desk.run("gio", &["open", &url]);
    assert!(output.status.success(), "gio open: {}", text(&output));
    let (argv, out) = desk.terminal_ran();
    assert_inert(&desk, &argv, &out, exe, &url);

    // xdg-open without a desktop environment: it needs a display variable
    // to look at scheme handlers, and no controlling terminal to start one.
    let output = desk
        .command("setsid")
        .args(["-w", "xdg-open", &url])
        .env("WAYLAND_DISPLAY", "olive2022-test-no-display")
        .output()
        .unwrap();
    assert!(output.status.success(), "xdg-open: {}", text(&output));
    let (argv, out) = desk.terminal_ran();
    assert_inert(&desk, &argv, &out, exe, &url);
}

/// `from` at `to`: a hard link when it can be, since a copy is a file open
/// for writing, and a test thread forking meanwhile (other tests run in
/// parallel) keeps it open in its child: exec then fails with "text file
/// busy". The copy is the fallback across file systems.
fn link_or_copy(from: &str, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn a_program_path_with_spaces_and_quotes_survives() {
    let desk = Desk::new();
    require("gio", "libglib2.0-bin");
    // A hard link keeps the odd path as the running program's own path.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let odd = dir.path().join("my apps/a\"b`c$d\\e 'f' ~g;h&(i)");
    std::fs::create_dir_all(&odd).unwrap();
    let exe = odd.join("olive2022");
    link_or_copy(BIN, &exe);
    let exe = exe.to_str().unwrap();
    let output = desk.run(exe, &["install"]);
    assert!(output.status.success(), "{}", text(&output));
    validate(&desk.user_entry());
    assert_eq!(installed_argv(&desk.user_entry()), [exe, "launch", "%u"]);
    let content = std::fs::read_to_string(desk.user_entry()).unwrap();
    assert_eq!(entry_value(&content, "TryExec"), exe);

    let url = hostile_url(&desk);
    let output = desk.run("gio", &["open", &url]);
    assert!(output.status.success(), "gio open: {}", text(&output));
    let (argv, out) = desk.terminal_ran();
    assert_inert(&desk, &argv, &out, exe, &url);

    // A `%` in the path is refused: GLib would ignore such an entry.
    let percent = dir.path().join("100%");
    std::fs::create_dir_all(&percent).unwrap();
    link_or_copy(BIN, &percent.join("olive2022"));
    let output = desk.run(percent.join("olive2022"), &["install"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains('%'), "{}", text(&output));
}

#[test]
fn system_install_and_uninstall_from_every_directory() {
    let desk = Desk::new();
    desk.olive(&["install", "--system"]);
    let system_entry = desk.path("sys1/applications/olive2022.desktop");
    validate(&system_entry);
    let system_list = desk.path("etc-xdg/mimeapps.list");
    assert!(
        std::fs::read_to_string(&system_list)
            .unwrap()
            .contains("x-scheme-handler/vmnetx+https=olive2022.desktop;")
    );
    assert!(!desk.user_entry().exists() && !desk.user_mimeapps().exists());
    for mime in SCHEMES {
        assert_eq!(desk.default_handler(mime), "olive2022.desktop", "{mime}");
    }
    // `--no-user` is the original's spelling of `--system`.
    desk.olive(&["install", "--no-user", "--convert"]);
    assert_eq!(installed_argv(&system_entry)[1], "convert");

    // A user install removes the older system copy first, as the original.
    desk.olive(&["install"]);
    assert!(!system_entry.exists());
    assert!(desk.user_entry().exists());

    // Copies everywhere, and other handlers next to ours.
    std::fs::create_dir_all(desk.path("sys2/applications")).unwrap();
    std::fs::copy(desk.user_entry(), &system_entry).unwrap();
    std::fs::copy(
        desk.user_entry(),
        desk.path("sys2/applications/olive2022.desktop"),
    )
    .unwrap();
    std::fs::write(
        desk.path("sys2/applications/mimeapps.list"),
        "[Default Applications]\n\
         x-scheme-handler/vmnetx=olive2022.desktop;other.desktop;\n\
         text/plain=gedit.desktop;\n",
    )
    .unwrap();
    let user_list = std::fs::read_to_string(desk.user_mimeapps()).unwrap();
    std::fs::write(
        desk.user_mimeapps(),
        format!("{user_list}[Default Applications]\ntext/html=firefox.desktop;\n"),
    )
    .unwrap();

    let output = desk.olive(&["uninstall"]);
    let said = text(&output);
    for entry in [
        desk.user_entry(),
        system_entry,
        desk.path("sys2/applications/olive2022.desktop"),
    ] {
        assert!(!entry.exists(), "{}", entry.display());
        assert!(said.contains(entry.to_str().unwrap()), "{said}");
    }
    let user_list = std::fs::read_to_string(desk.user_mimeapps()).unwrap();
    assert!(!user_list.contains("olive2022"), "{user_list}");
    assert!(
        user_list.contains("text/html=firefox.desktop;"),
        "{user_list}"
    );
    assert!(
        !std::fs::read_to_string(&system_list)
            .unwrap()
            .contains("olive2022")
    );
    assert_eq!(
        std::fs::read_to_string(desk.path("sys2/applications/mimeapps.list")).unwrap(),
        "[Default Applications]\n\
         x-scheme-handler/vmnetx=other.desktop;\n\
         text/plain=gedit.desktop;\n"
    );
    assert_eq!(desk.default_handler("x-scheme-handler/vmnetx+https"), "");
    let cache = std::fs::read_to_string(desk.path("data/applications/mimeinfo.cache")).unwrap();
    assert!(!cache.contains("olive2022"), "{cache}");

    // Nothing left: uninstall again succeeds and says so.
    let output = desk.olive(&["uninstall"]);
    assert!(text(&output).contains("not installed"), "{}", text(&output));
}

#[test]
fn dry_run_prints_and_touches_nothing() {
    let desk = Desk::new();
    std::fs::write(
        desk.user_mimeapps(),
        "[Default Applications]\ntext/html=firefox.desktop;\n",
    )
    .unwrap();
    let before = desk.snapshot();
    let output = desk.olive(&["-n", "install"]);
    let said = text(&output);
    assert!(said.contains(desk.user_entry().to_str().unwrap()), "{said}");
    assert!(said.contains("Exec="), "{said}");
    assert!(
        said.contains(desk.user_mimeapps().to_str().unwrap()),
        "{said}"
    );
    let output = desk.olive(&["install", "--system", "--convert", "--dry-run"]);
    let said = text(&output);
    assert!(
        said.contains("sys1/applications/olive2022.desktop"),
        "{said}"
    );
    assert!(said.contains("convert %u"), "{said}");
    desk.olive(&["-n", "uninstall"]);
    assert_eq!(desk.snapshot(), before);

    desk.olive(&["install"]);
    let installed = desk.snapshot();
    let output = desk.olive(&["uninstall", "-n"]);
    let said = text(&output);
    assert!(said.contains(desk.user_entry().to_str().unwrap()), "{said}");
    assert!(
        said.contains(desk.user_mimeapps().to_str().unwrap()),
        "{said}"
    );
    assert_eq!(desk.snapshot(), installed);
}

#[test]
fn without_update_desktop_database_install_still_works() {
    let desk = Desk::new();
    // A PATH with only the shell tools, not desktop-file-utils.
    let bin = desk.path("bare");
    std::fs::create_dir_all(&bin).unwrap();
    let output = desk
        .command(BIN)
        .args(["install", "-v"])
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(desk.user_entry().exists());
    assert!(!desk.path("data/applications/mimeinfo.cache").exists());
    assert!(
        text(&output).contains("update-desktop-database"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_failed_system_install_says_why_and_keeps_the_old_handler() {
    let desk = Desk::new();
    desk.olive(&["install"]);
    // Root may write anywhere, so make the system directory unusable
    // another way: a file where the directory should be.
    std::fs::write(desk.path("sys1/applications"), "not a directory").unwrap();
    let output = desk.run(BIN, &["install", "--system"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let said = text(&output);
    assert!(
        said.contains("sys1/applications/olive2022.desktop") && said.contains("sudo"),
        "{said}"
    );
    assert!(desk.user_entry().exists());
    assert_eq!(
        desk.default_handler("x-scheme-handler/vmnetx"),
        "olive2022.desktop"
    );
}
