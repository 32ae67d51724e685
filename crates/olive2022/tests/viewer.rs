//! Finding and starting a VNC viewer: the original's order, each viewer's
//! own address syntax, a custom program from `--viewer` or
//! `OLIVE2022_VIEWER`, and a helpful error when there is none. Stub viewers
//! record the arguments they were started with.
#![allow(clippy::unwrap_used)]

use launch::viewer;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use viewer::Viewer;

/// A directory of stub programs that write their argv (NUL-separated) to
/// `<dir>/<name>.argv` and exit with `status`.
fn stub(dir: &Path, name: &str, status: i32) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let program = dir.join(name);
    let record = dir.join(format!("{name}.argv"));
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\nprintf '%s\\0' \"$@\" > '{}'\nexit {status}\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    program
}

/// `viewer::run`, again while the stub is "text file busy": another test
/// thread may fork while a stub is still open for writing, and its child
/// holds that descriptor until it execs (the classic ETXTBSY race of tests
/// that write and run scripts).
fn run_viewer(
    viewer: &Viewer,
    host: impl std::fmt::Display + Copy,
    port: u16,
) -> Result<std::process::ExitStatus, launch::ViewerError> {
    for _ in 0..100 {
        match viewer::run(viewer, host, port) {
            Err(launch::ViewerError::Start { source, .. })
                if source.kind() == std::io::ErrorKind::ExecutableFileBusy =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result,
        }
    }
    viewer::run(viewer, host, port)
}

fn recorded(program: &Path) -> Vec<String> {
    let record = program.with_file_name(format!(
        "{}.argv",
        program.file_name().unwrap().to_str().unwrap()
    ));
    let bytes = std::fs::read(&record).unwrap_or_else(|e| panic!("{}: {e}", record.display()));
    let text = String::from_utf8(bytes).unwrap();
    text.split_terminator('\0').map(str::to_owned).collect()
}

fn find(custom: Option<&str>, path: &Path) -> Result<Viewer, launch::ViewerError> {
    viewer::find_in(custom.map(OsStr::new), Some(path.as_os_str()))
}

#[test]
fn the_originals_order_whatever_the_path_order() {
    let temp = tempfile::tempdir().unwrap();
    let first = temp.path().join("first");
    let second = temp.path().join("second");
    let vncviewer = stub(&first, "vncviewer", 0);
    let gvncviewer = stub(&first, "gvncviewer", 0);
    let remote = stub(&second, "remote-viewer", 0);
    let path = std::env::join_paths([&first, &second]).unwrap();
    let path = Path::new(&path);

    assert_eq!(
        find(None, path).unwrap(),
        Viewer::RemoteViewer(remote.clone())
    );
    std::fs::remove_file(&remote).unwrap();
    assert_eq!(
        find(None, path).unwrap(),
        Viewer::Gvncviewer(gvncviewer.clone())
    );
    std::fs::remove_file(&gvncviewer).unwrap();
    assert_eq!(
        find(None, path).unwrap(),
        Viewer::Vncviewer(vncviewer.clone())
    );

    // Neither a file without execute bits nor a directory counts.
    std::fs::write(second.join("remote-viewer"), "#!/bin/sh\n").unwrap();
    std::fs::create_dir(second.join("gvncviewer")).unwrap();
    assert_eq!(find(None, path).unwrap(), Viewer::Vncviewer(vncviewer));
}

/// A viewer kind, its program name, host, port, and the argument expected.
type Case = (
    fn(PathBuf) -> Viewer,
    &'static str,
    &'static str,
    u16,
    &'static str,
);

#[test]
fn each_viewer_gets_its_own_address_syntax() {
    let temp = tempfile::tempdir().unwrap();
    let bin = temp.path();
    let cases: [Case; 12] = [
        (
            Viewer::RemoteViewer,
            "remote-viewer",
            "127.0.0.1",
            5901,
            "vnc://127.0.0.1:5901",
        ),
        (
            Viewer::RemoteViewer,
            "remote-viewer",
            "::1",
            5900,
            "vnc://[::1]:5900",
        ),
        (
            Viewer::RemoteViewer,
            "remote-viewer",
            "vmi-vnc",
            5900,
            "vnc://vmi-vnc:5900",
        ),
        // gvncviewer: HOST:DISPLAY, port = 5900 + atoi(DISPLAY).
        (
            Viewer::Gvncviewer,
            "gvncviewer",
            "vmi-vnc",
            5900,
            "vmi-vnc:0",
        ),
        (
            Viewer::Gvncviewer,
            "gvncviewer",
            "127.0.0.1",
            5901,
            "127.0.0.1:1",
        ),
        (
            Viewer::Gvncviewer,
            "gvncviewer",
            "127.0.0.1",
            6000,
            "127.0.0.1:100",
        ),
        (
            Viewer::Gvncviewer,
            "gvncviewer",
            "127.0.0.1",
            5800,
            "127.0.0.1:-100",
        ),
        // vncviewer: HOST::PORT is a port, never a display.
        (
            Viewer::Vncviewer,
            "vncviewer",
            "127.0.0.1",
            5901,
            "127.0.0.1::5901",
        ),
        (
            Viewer::Vncviewer,
            "vncviewer",
            "127.0.0.1",
            40000,
            "127.0.0.1::40000",
        ),
        (Viewer::Vncviewer, "vncviewer", "::1", 5900, "[::1]::5900"),
        (
            Viewer::Custom,
            "my-viewer",
            "127.0.0.1",
            5999,
            "vnc://127.0.0.1:5999",
        ),
        (Viewer::Custom, "my-viewer", "::1", 1, "vnc://[::1]:1"),
    ];
    for (make, name, host, port, expected) in cases {
        let program = stub(bin, name, 0);
        let viewer = make(program.clone());
        let status = run_viewer(&viewer, host, port).unwrap();
        assert!(status.success());
        assert_eq!(recorded(&program), [expected], "{name} {host} {port}");
        assert_eq!(viewer.program(), program);
        assert_eq!(
            viewer.command_line(host, port),
            format!("{} {expected}", program.display())
        );
    }
    // An IpAddr works as the host too.
    let program = stub(bin, "remote-viewer", 0);
    let host: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    run_viewer(&Viewer::RemoteViewer(program.clone()), host, 5902).unwrap();
    assert_eq!(recorded(&program), ["vnc://127.0.0.1:5902"]);
}

#[test]
fn the_viewers_exit_status_comes_back() {
    let temp = tempfile::tempdir().unwrap();
    let program = stub(temp.path(), "vncviewer", 3);
    let status = run_viewer(&Viewer::Vncviewer(program), "127.0.0.1", 5900).unwrap();
    assert_eq!(status.code(), Some(3));
    let gone = Viewer::Custom(temp.path().join("missing"));
    let error = viewer::run(&gone, "127.0.0.1", 5900).unwrap_err();
    assert!(format!("{error:#}").contains("missing"), "{error:#}");
}

#[test]
fn a_custom_viewer_comes_first() {
    let temp = tempfile::tempdir().unwrap();
    let bin = temp.path().join("bin");
    stub(&bin, "remote-viewer", 0);
    let mine = stub(&bin, "my-viewer", 0);
    assert_eq!(
        find(Some("my-viewer"), &bin).unwrap(),
        Viewer::Custom(mine.clone())
    );
    // A path is taken as it is, even outside PATH.
    let elsewhere = stub(&temp.path().join("opt"), "viewer", 0);
    assert_eq!(
        find(Some(elsewhere.to_str().unwrap()), &bin).unwrap(),
        Viewer::Custom(elsewhere)
    );
    // An empty choice is no choice.
    assert!(matches!(
        find(Some(""), &bin).unwrap(),
        Viewer::RemoteViewer(_)
    ));
    // A choice that does not exist is an error, not a silent fallback.
    for missing in ["no-such-viewer", "/nonexistent/viewer"] {
        let error = find(Some(missing), &bin).unwrap_err().to_string();
        assert!(
            error.contains(missing) && error.contains("OLIVE2022_VIEWER"),
            "{error}"
        );
    }
}

#[test]
fn no_viewer_names_the_packages_that_provide_one() {
    let temp = tempfile::tempdir().unwrap();
    for path in [Some(temp.path().as_os_str()), None] {
        let error = viewer::find_in(None, path).unwrap_err().to_string();
        for needle in [
            "virt-viewer",
            "gvncviewer",
            "tigervnc-viewer",
            "remote-viewer",
            "--viewer",
            "OLIVE2022_VIEWER",
        ] {
            assert!(error.contains(needle), "{needle}: {error}");
        }
    }
}

#[test]
fn the_binary_reads_the_flag_and_the_environment() {
    let temp = tempfile::tempdir().unwrap();
    let bin = temp.path().join("bin");
    stub(&bin, "gvncviewer", 0);
    let mine = stub(&bin, "from-env", 0);
    let flag = stub(&bin, "from-flag", 0);
    // `olive2022 -n stage2` says which viewer it would start, and how.
    let plan = |viewer_env: Option<&str>, extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_olive2022"));
        command.args(["-n", "stage2"]).args(extra).env("PATH", &bin);
        match viewer_env {
            Some(value) => command.env(viewer::VIEWER_ENV, value),
            None => command.env_remove(viewer::VIEWER_ENV),
        };
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let from_env = plan(Some("from-env"), &[]);
    assert!(
        from_env.contains(&format!("{} vnc://vmi-vnc:5900", mine.display())),
        "{from_env}"
    );
    // `--viewer` wins over the environment.
    let from_flag = plan(Some("from-env"), &["--viewer", "from-flag"]);
    assert!(
        from_flag.contains(&format!("{} vnc://vmi-vnc:5900", flag.display())),
        "{from_flag}"
    );
    let default = plan(None, &[]);
    assert!(
        default.contains(&format!("{} vmi-vnc:0", bin.join("gvncviewer").display())),
        "{default}"
    );
}
