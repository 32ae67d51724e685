//! QEMU started so that it never outlives the process that started it.
//!
//! A VM must end with its cloudlet, even a cloudlet killed outright
//! (SIGKILL, the OOM killer, a crash), so QEMU gets a parent-death signal:
//! `setpriv --pdeathsig KILL` (util-linux) sets it and then executes QEMU,
//! whose process id is the one we spawned. Doing it in our own process
//! would need `pre_exec`, which is `unsafe`; the workspace forbids that.
//!
//! The catch: Linux sends the parent-death signal when the *thread* that
//! forked the child exits, not the process. Tokio's blocking threads, where
//! the cloudlet starts VMs, exit after ten idle seconds, which would kill a
//! VM ten seconds after the cloudlet went quiet. So every spawn goes to one
//! thread, [`SPAWNER_THREAD`], started on first use and never ended: it
//! lives as long as the process.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

/// The name of the thread that spawns every QEMU.
pub const SPAWNER_THREAD: &str = "vm-spawner";
/// The program that sets the parent-death signal, then executes QEMU.
const SETPRIV: &str = "setpriv";

type Reply = Sender<io::Result<Child>>;

/// `program` with `args`, started from the spawner thread with a
/// parent-death signal of SIGKILL. `configure` sets the rest of the command
/// (directory, standard streams). Fails with `NotFound` when `program` is
/// not on the `PATH`.
pub(crate) fn spawn_bound_to_us(
    program: &str,
    args: &[std::ffi::OsString],
    configure: impl FnOnce(&mut Command),
) -> io::Result<Child> {
    let program = find_on_path(program).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{program} is not on the PATH"),
        )
    })?;
    let mut command = Command::new(SETPRIV);
    command
        .args(["--pdeathsig", "KILL", "--"])
        .arg(&program)
        .args(args);
    configure(&mut command);
    spawn_on_spawner_thread(command)
}

/// Sends `command` to the spawner thread and waits for the child.
fn spawn_on_spawner_thread(command: Command) -> io::Result<Child> {
    let (reply, answer) = mpsc::channel();
    let spawner = spawner()?;
    spawner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((command, reply))
        .map_err(|_| io::Error::other("the VM spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the VM spawner thread is gone"))?
}

/// The channel to the spawner thread, started on first use.
fn spawner() -> io::Result<&'static Mutex<Sender<(Command, Reply)>>> {
    static SPAWNER: OnceLock<Mutex<Sender<(Command, Reply)>>> = OnceLock::new();
    if let Some(spawner) = SPAWNER.get() {
        return Ok(spawner);
    }
    let (requests, incoming) = mpsc::channel::<(Command, Reply)>();
    std::thread::Builder::new()
        .name(SPAWNER_THREAD.to_owned())
        .spawn(move || {
            // Never returns while the sender lives, and the sender is in
            // a static: the thread lasts as long as the process.
            for (mut command, reply) in incoming {
                let _ = reply.send(command.spawn());
            }
        })?;
    // Two first callers may race; the loser's thread ends with its channel.
    Ok(SPAWNER.get_or_init(|| Mutex::new(requests)))
}

/// The first executable `name` in `PATH` (or `name` itself when it holds a
/// slash).
fn find_on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name)).filter(|path| is_executable(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_child_gets_the_parent_death_signal() {
        // `setpriv --dump`, run through the spawner, reports its own
        // parent-death signal: the one we set before it executed.
        let child = spawn_bound_to_us("setpriv", &["--dump".into()], |command| {
            command.stdout(std::process::Stdio::piped());
        })
        .unwrap();
        let output = child.wait_with_output().unwrap();
        let dump = String::from_utf8_lossy(&output.stdout);
        assert!(
            dump.lines()
                .any(|line| line.starts_with("Parent death signal:")
                    && line.to_ascii_uppercase().contains("KILL")),
            "{dump}"
        );
    }

    #[test]
    fn every_child_comes_from_one_thread_that_stays() {
        let first = spawn_bound_to_us("true", &[], |_| {}).unwrap();
        let second = spawn_bound_to_us("true", &[], |_| {}).unwrap();
        for mut child in [first, second] {
            assert!(child.wait().unwrap().success());
        }
        // A listing of /proc/self/task taken while other tests' threads
        // come and go can miss an entry (seen once on a loaded machine):
        // looked at again for a while before the verdict.
        let spawners = || {
            let names: Vec<String> = std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect();
            let count = names.iter().filter(|name| *name == SPAWNER_THREAD).count();
            (count, names)
        };
        let mut seen = spawners();
        for _ in 0..20 {
            if seen.0 == 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            seen = spawners();
        }
        assert_eq!(seen.0, 1, "{:?}", seen.1);
    }

    #[test]
    fn a_missing_program_is_not_found() {
        let error = spawn_bound_to_us("no-such-program-olive2022", &[], |_| {}).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}
