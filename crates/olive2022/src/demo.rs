//! `olive2022 demo`: the whole path on one machine, in one command.
//!
//! 1. **disk**: a 32 MiB FAT disk made bootable with SYSLINUX (Debian's
//!    `dosfstools`, `mtools`, `syslinux`), which shows a message and waits
//!    at its `boot:` prompt; compressed to qcow2 by our `diskimage` crate;
//! 2. **package**: a VMNetX package (`vmnetx-package.xml`, `domain.xml`,
//!    `disk.img`, all STORED) written with the `zip` crate;
//! 3. **convert**: our own `convert --output oci:WORK/layout` into an OCI
//!    layout and a recipe in `WORK/RECIPES`;
//! 4. **cloudlet**: our own `cloudlet` as a child process on free loopback
//!    ports, its data in `WORK/cloudlet`, ready once its API answers;
//! 5. **launch**: our own `launch` through that cloudlet (WireGuard in user
//!    space), with a viewer when there is a display, else with this binary
//!    as the viewer (see [`crate::snapshot`]), which saves a PNG; with
//!    `--browser`, noVNC in the web browser until its page is closed.
//!
//! The cloudlet is always stopped at the end (Ctrl-C, then a kill if it
//! does not end), and any QEMU it left is ended; a temporary work
//! directory is removed. Tools run from argument lists, never a shell.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use diskimage::{ConvertOptions, DiskReader, FileRange, InputFormat, Source};
use vmnetx::bus::DiskBus;
use vmnetx::domain::DiskFormat;
use vmnetx::package::write::{Compression, PackageContents};
use vmnetx::package::xml::DomainSpec;
use vmnetx::package::{self, Manifest};
use vmnetx::url::VmnetxUrl;

use ::launch::viewer;

use crate::cli::{AccelArg, Cli, DemoArgs};
use crate::demo_plan::{DemoPlan, DemoShow};
use crate::interrupt;
use crate::progress::{TerminalObserver, Verbosity};
use crate::snapshot;

/// The demo VM's (made-up) address in the Olive Archive; only its UUID
/// matters.
pub const DEMO_URL: &str = "vmnetx+https://olivearchive.org/demo/olive2022-demo.nxpk";
/// The VM's name in its package.
pub const DEMO_NAME: &str = "Olive 2022 demo";
/// Size of the demo disk.
const DISK_SIZE: u64 = 32 << 20;
/// SYSLINUX's configuration: show the message, wait at the prompt.
const SYSLINUX_CFG: &str = "DEFAULT demo\r\nPROMPT 1\r\nTIMEOUT 0\r\nDISPLAY message.txt\r\n\
                            LABEL demo\r\n  LOCALBOOT 0\r\n";
/// The message SYSLINUX shows: Ctrl-L clears the screen, Ctrl-O plus two
/// hex digits sets the colours (background, foreground).
const MESSAGE: &str = "\x0c\r\n\x0f1f  Olive 2022 demo VM  \x0f07\r\n\r\n\
    This screen came through olive2022 convert -> the embedded cloudlet (QEMU)\r\n\
    -> a user-space WireGuard tunnel -> VNC.\r\n\r\n";
/// How long the cloudlet may take to answer its API.
const CLOUDLET_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the cloudlet may take to stop after Ctrl-C (it stops its VMs).
const CLOUDLET_STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a child may take to end after Ctrl-C before it is killed.
const CHILD_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait for the screen to settle once the display answers.
const MAX_SNAPSHOT_WAIT: u64 = 30;

/// The Debian packages of the tools used to build the disk.
const TOOLS: [(&str, &str); 3] = [
    ("mkfs.vfat", "dosfstools"),
    ("mcopy", "mtools"),
    ("syslinux", "syslinux"),
];

/// Runs `demo`.
pub fn run(cli: &Cli, args: &DemoArgs) -> Result<ExitCode> {
    crate::json::plan_only(args.json, cli.dry_run)?;
    let display = if args.browser {
        None
    } else {
        display_viewer(args)
    };
    let screenshot = absolute(&args.screenshot)?;
    if cli.dry_run {
        return dry_run(&plan(args, display.as_ref(), &screenshot)?, args.json);
    }
    // From here on Ctrl-C sets a flag: the children stop, then we clean up.
    let _ = interrupt::flag();
    let started = Instant::now();
    let (work, _temporary) = work_dir(args)?;
    let mut report = Report::new(cli.quiet);

    let step = Instant::now();
    let raw = build_disk(&work)?;
    let qcow2 = work.join("disk.qcow2");
    let stats = compress(&raw, &qcow2)?;
    report.step(
        "disk",
        step,
        format!(
            "{} MiB SYSLINUX disk, {} KiB as qcow2",
            stats.virtual_size >> 20,
            stats.output_size >> 10
        ),
    );

    let step = Instant::now();
    let package = work.join("demo.nxpk");
    write_package(&package, &qcow2)?;
    report.step("package", step, package.display().to_string());

    let step = Instant::now();
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let layout = work.join("layout");
    let recipes = work.join("RECIPES");
    let digest = convert(cli, &package, &layout, &recipes)?;
    let uuid = VmnetxUrl::parse(DEMO_URL)?.sinfonia_uuid();
    report.step(
        "convert",
        step,
        format!(
            "oci:{} ({digest}), recipe {}",
            layout.display(),
            recipes.join(format!("{uuid}.yaml")).display()
        ),
    );

    let step = Instant::now();
    let mut cloudlet =
        CloudletChild::start(cli, &exe, &recipes, &work.join("cloudlet"), args.accel)?;
    report.step(
        "cloudlet",
        step,
        format!(
            "API http://{}, WireGuard {}, QEMU accel {}",
            cloudlet.api,
            cloudlet.wireguard,
            args.accel.name()
        ),
    );

    let step = Instant::now();
    let outcome = launch(
        cli,
        args,
        &exe,
        &work,
        &cloudlet,
        display.as_ref(),
        &screenshot,
    );
    let stopped = cloudlet.stop();
    let outcome = outcome?;
    stopped?;
    match &outcome {
        Launched::Viewer => report.step("launch", step, "the viewer was closed".into()),
        Launched::Browser => report.step("launch", step, "the browser's page was closed".into()),
        Launched::Screenshot { width, height } => report.step(
            "launch",
            step,
            format!("screenshot {width}×{height} through the tunnel"),
        ),
        Launched::Interrupted => {}
    }
    if matches!(outcome, Launched::Interrupted) && !args.keep_running {
        return Err(
            anyhow::Error::new(diskimage::Error::Cancelled).context("the demo was interrupted")
        );
    }
    let saved = match outcome {
        Launched::Screenshot { .. } => true,
        // With --keep-running, Ctrl-C comes after the screenshot.
        Launched::Interrupted => {
            display.is_none() && !args.browser && written_since(&screenshot, started)
        }
        Launched::Viewer | Launched::Browser => false,
    };
    if saved {
        println!("Screenshot: {}", screenshot.display());
    }
    if args.work_dir.is_some() {
        println!("Work directory (kept): {}", work.display());
    }
    println!("Demo done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// The viewer to use when there is a display (and no `--headless`).
fn display_viewer(args: &DemoArgs) -> Option<viewer::Viewer> {
    let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
    if args.headless || !(set("DISPLAY") || set("WAYLAND_DISPLAY")) {
        return None;
    }
    match viewer::find(None) {
        Ok(viewer) => Some(viewer),
        Err(error) => {
            eprintln!("olive2022 demo: {error}; saving a screenshot instead");
            None
        }
    }
}

/// `--dry-run`: the plan as numbered steps, or (`--json`) as one
/// [`DemoPlan`].
fn dry_run(plan: &DemoPlan, json: bool) -> Result<ExitCode> {
    if json {
        crate::json::print_line(plan)?;
        return Ok(ExitCode::SUCCESS);
    }
    let work = match &plan.work_dir {
        Some(dir) => dir.display().to_string(),
        None => "a temporary directory (removed afterwards)".into(),
    };
    println!("Work directory: {work}");
    println!(
        "1. Build a 32 MiB FAT disk booting SYSLINUX (mkfs.vfat, mcopy, syslinux) and compress it to qcow2"
    );
    println!(
        "2. Package it as a VMNetX package \"{}\" (demo.nxpk)",
        plan.name
    );
    println!(
        "3. olive2022 convert --output oci:WORK/layout --recipes WORK/RECIPES {} WORK/demo.nxpk",
        plan.url
    );
    println!(
        "4. olive2022 cloudlet on free loopback ports, data in WORK/cloudlet, QEMU accel {}",
        plan.accel
    );
    match &plan.show {
        DemoShow::Browser => println!(
            "5. olive2022 launch --browser through that cloudlet: noVNC in the web browser"
        ),
        DemoShow::Viewer { program } => println!(
            "5. olive2022 launch through that cloudlet, viewer {}",
            program.display()
        ),
        DemoShow::Screenshot { path } => println!(
            "5. olive2022 launch through that cloudlet, screenshot to {}",
            path.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// What a run with `args` would do.
fn plan(args: &DemoArgs, display: Option<&viewer::Viewer>, screenshot: &Path) -> Result<DemoPlan> {
    let show = match display {
        None if args.browser => DemoShow::Browser,
        Some(viewer) => DemoShow::Viewer {
            program: viewer.program().to_owned(),
        },
        None => DemoShow::Screenshot {
            path: screenshot.to_owned(),
        },
    };
    Ok(DemoPlan {
        work_dir: args.work_dir.clone(),
        url: DEMO_URL.to_owned(),
        uuid: VmnetxUrl::parse(DEMO_URL)?.sinfonia_uuid().to_string(),
        name: DEMO_NAME.to_owned(),
        accel: args.accel.name().to_owned(),
        show,
        keep_running: args.keep_running,
    })
}

/// The work directory (absolute), and the temporary directory to remove
/// at the end when none was given.
fn work_dir(args: &DemoArgs) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let dir = std::fs::canonicalize(dir)
                .with_context(|| format!("cannot use {}", dir.display()))?;
            Ok((dir, None))
        }
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("olive2022-demo.")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let dir = std::fs::canonicalize(temporary.path())?;
            Ok((dir, Some(temporary)))
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    Ok(std::env::current_dir()
        .context("cannot find the current directory")?
        .join(path))
}

/// The steps' lines, printed as they finish.
struct Report {
    quiet: bool,
    number: usize,
}

impl Report {
    fn new(quiet: bool) -> Report {
        Report { quiet, number: 0 }
    }

    fn step(&mut self, name: &str, started: Instant, what: String) {
        self.number += 1;
        if !self.quiet {
            println!(
                "[{}/5] {name:<8} {:>5.1} s  {what}",
                self.number,
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Builds `WORK/demo.img`: FAT, the message, SYSLINUX installed.
fn build_disk(work: &Path) -> Result<PathBuf> {
    let image = work.join("demo.img");
    let config = work.join("syslinux.cfg");
    let message = work.join("message.txt");
    let file =
        File::create(&image).with_context(|| format!("cannot create {}", image.display()))?;
    file.set_len(DISK_SIZE)?;
    drop(file);
    std::fs::write(&config, SYSLINUX_CFG)?;
    std::fs::write(&message, MESSAGE)?;
    let [mkfs, mcopy, syslinux] = TOOLS.map(|(name, package)| find_tool(name, package));
    run_tool(Command::new(mkfs?).args(["-n", "OLIVEDEMO"]).arg(&image))?;
    run_tool(
        Command::new(mcopy?)
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&image)
            .args([&config, &message])
            .arg("::/"),
    )?;
    run_tool(Command::new(syslinux?).arg("--install").arg(&image))?;
    Ok(image)
}

/// A tool on `PATH` or in the system directories (mkfs.vfat lives in
/// /usr/sbin, which a user's `PATH` may lack).
fn find_tool(name: &str, package: &str) -> Result<PathBuf> {
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if !path.is_empty() {
        path.push(":");
    }
    path.push("/usr/sbin:/sbin:/usr/bin:/bin");
    viewer::find_program(OsStr::new(name), Some(&path)).with_context(|| {
        format!("{name} is not installed: run scripts/setup.sh (Debian package {package})")
    })
}

/// Runs a tool, its output kept for the error message.
fn run_tool(command: &mut Command) -> Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        interrupted()?;
        bail!(
            "{program} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `raw` as a compressed qcow2 image at `out`, by our own diskimage.
fn compress(raw: &Path, out: &Path) -> Result<diskimage::ConvertStats> {
    let input = FileRange::open(raw).with_context(|| format!("cannot read {}", raw.display()))?;
    let reader = DiskReader::open(
        Source::RandomAccess(Box::new(input)),
        Some(InputFormat::Raw),
    )?;
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let options = ConvertOptions {
        cancel: Some(interrupt::flag()),
        ..ConvertOptions::default()
    };
    let (file, stats) = diskimage::convert(reader, file, &options, &mut |_| {})?;
    file.sync_all()?;
    Ok(stats)
}

/// The package's libvirt domain: 1 vCPU, 64 MiB, the qcow2 disk on IDE.
fn demo_domain() -> DomainSpec {
    DomainSpec {
        name: "olive2022-demo".to_owned(),
        vcpus: 1,
        memory_mib: 64,
        arch: "i686".to_owned(),
        machine: "pc".to_owned(),
        disk_format: DiskFormat::Qcow2,
        disk_bus: DiskBus::Ide,
        network: false,
    }
}

/// Writes the VMNetX package: manifest, domain and disk, all STORED.
fn write_package(out: &Path, disk: &Path) -> Result<()> {
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let manifest = Manifest {
        name: DEMO_NAME.to_owned(),
        domain_path: "domain.xml".to_owned(),
        disk_path: "disk.img".to_owned(),
        memory_path: None,
    };
    let contents = PackageContents {
        manifest: &manifest,
        domain_xml: &demo_domain().xml(),
        disk: Some((disk, Compression::Stored)),
    };
    package::write::write_package(file, &contents)?.sync_all()?;
    Ok(())
}

/// The verbosity flag passed to a child whose own output is not the point.
fn quiet_child(cli: &Cli) -> &'static str {
    if cli.is_verbose() { "-v" } else { "-q" }
}

/// Converts the package into the OCI layout with the `convert` crate;
/// returns the image's digest.
fn convert(cli: &Cli, package: &Path, layout: &Path, recipes: &Path) -> Result<String> {
    let settings = convert::ConvertSettings {
        registry: String::new(),
        layout: Some(layout.to_owned()),
        insecure_registry: false,
        registry_ca: None,
        recipes: recipes.to_owned(),
        tmp_dir: None,
        name: None,
        compression: diskimage::Compression::DEFLATE,
        threads: None,
        max_virtual_size: diskimage::DEFAULT_MAX_VIRTUAL_SIZE,
        chart: sinfonia::vmi::ORIGINAL_CHART.to_owned(),
        chart_version: sinfonia::vmi::ORIGINAL_CHART_VERSION.to_owned(),
        pull_credentials: None,
        cancel: interrupt::flag(),
    };
    let job = convert::ConvertJob::new(DEMO_URL, Some(package.to_owned()))?;
    // The demo prints one line per step: the pipeline's own lines only
    // with -v.
    let mut observer = TerminalObserver {
        verbosity: Verbosity {
            quiet: !cli.is_verbose(),
            verbose: cli.is_verbose(),
        },
    };
    let report = convert::convert(&job, &settings, &mut observer)?;
    Ok(report.digest.to_string())
}

/// An error when Ctrl-C was pressed.
fn interrupted() -> Result<()> {
    if interrupt::requested() {
        return Err(
            anyhow::Error::new(diskimage::Error::Cancelled).context("the demo was interrupted")
        );
    }
    Ok(())
}

/// Waits for `child`; on Ctrl-C passes it on (the child may not have got
/// it: not every Ctrl-C reaches the whole process group), then kills it if
/// it does not end.
fn wait_child(child: &mut Child) -> Result<ExitStatus> {
    let mut forwarded: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        match forwarded {
            None if interrupt::requested() => {
                interrupt_process(child.id());
                forwarded = Some(Instant::now());
            }
            Some(at) if at.elapsed() > CHILD_STOP_TIMEOUT => {
                let _ = child.kill();
                return Ok(child.wait()?);
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGINT to `pid`, as Ctrl-C would.
fn interrupt_process(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    rustix::process::kill_process(pid, rustix::process::Signal::INT).is_ok()
}

/// `olive2022 cloudlet` as a child process; stopped on drop.
struct CloudletChild {
    child: Option<Child>,
    data_dir: PathBuf,
    api: SocketAddr,
    wireguard: SocketAddr,
}

impl CloudletChild {
    fn start(
        cli: &Cli,
        exe: &Path,
        recipes: &Path,
        data_dir: &Path,
        accel: AccelArg,
    ) -> Result<CloudletChild> {
        std::fs::create_dir_all(data_dir)?;
        // Port 0: the cloudlet binds free ports itself and announces them.
        let mut command = Command::new(exe);
        // The demo's cloudlet is configured by its flags alone: an
        // operator's settings file or variables (a public endpoint, say)
        // are for their own cloudlet.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OLIVE2022_CLOUDLET_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .args([quiet_child(cli), "cloudlet", "--announce"])
            .args(["--listen", "127.0.0.1:0", "--wg-listen", "127.0.0.1:0"])
            .args(["--accel", accel.name()])
            .arg("--recipes")
            .arg(recipes)
            .arg("--data-dir")
            .arg(data_dir)
            // The images too: the demo's work directory holds everything.
            .arg("--cache-dir")
            .arg(data_dir.join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot run olive2022 cloudlet")?;
        let stdout = child.stdout.take().context("no pipe from the cloudlet")?;
        let (sender, announced) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let mut cloudlet = CloudletChild {
            child: Some(child),
            data_dir: data_dir.to_owned(),
            api: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            wireguard: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        };
        cloudlet.wait_ready(&announced)?;
        Ok(cloudlet)
    }

    /// Waits for the cloudlet's announcement of its addresses.
    fn wait_ready(&mut self, announced: &std::sync::mpsc::Receiver<String>) -> Result<()> {
        let deadline = Instant::now() + CLOUDLET_START_TIMEOUT;
        loop {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!("olive2022 cloudlet exited ({status}) before it was ready");
            }
            interrupted()?;
            match announced.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let addresses: Announcement =
                        serde_json::from_str(&line).with_context(|| {
                            format!(
                                "the cloudlet announced {:?}, not its addresses",
                                line.trim()
                            )
                        })?;
                    self.api = addresses.api;
                    self.wireguard = addresses.wireguard;
                    return Ok(());
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                // The pipe closed: the child is exiting; try_wait says why.
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the cloudlet did not announce its addresses within {} s",
                    CLOUDLET_START_TIMEOUT.as_secs()
                );
            }
        }
    }

    /// Stops the cloudlet (Ctrl-C: it stops its VMs), kills it if it does
    /// not end, then ends any QEMU left under its data directory.
    fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let mut clean = false;
        if child.try_wait()?.is_none() && interrupt_process(child.id()) {
            let deadline = Instant::now() + CLOUDLET_STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait()? {
                    clean = status.success();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if child.try_wait()?.is_none() {
            let _ = child.kill();
        }
        let status = child.wait()?;
        clean |= status.success();
        let cleanup = vmrunner::cleanup_leftovers(&self.data_dir);
        if !cleanup.killed.is_empty() {
            eprintln!(
                "olive2022 demo: ended {} QEMU process(es) the cloudlet left",
                cleanup.killed.len()
            );
        }
        if let Some(error) = cleanup.errors.first() {
            bail!("cannot clean up after the cloudlet: {error}");
        }
        if !clean && !interrupt::requested() {
            bail!("the cloudlet did not stop cleanly ({status})");
        }
        Ok(())
    }
}

impl Drop for CloudletChild {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("olive2022 demo: {error:#}");
        }
    }
}

/// What `olive2022 cloudlet --announce` prints once ready.
#[derive(serde::Deserialize)]
struct Announcement {
    api: SocketAddr,
    wireguard: SocketAddr,
}

/// How the launch ended.
enum Launched {
    /// A viewer ran and was closed.
    Viewer,
    /// The browser's page was closed.
    Browser,
    /// The screenshot was saved.
    Screenshot { width: u32, height: u32 },
    /// Ctrl-C.
    Interrupted,
}

/// Runs `launch` through the cloudlet: with the display's viewer, or with
/// this binary as the viewer, saving the screenshot.
fn launch(
    cli: &Cli,
    args: &DemoArgs,
    exe: &Path,
    work: &Path,
    cloudlet: &CloudletChild,
    display: Option<&viewer::Viewer>,
    screenshot: &Path,
) -> Result<Launched> {
    let tier1 = format!("http://{}", cloudlet.api);
    let mut command = Command::new(exe);
    if cli.quiet {
        command.arg("-q");
    } else if cli.is_verbose() {
        command.arg("-v");
    }
    command
        .args([
            "launch",
            "--tier1-url",
            &tier1,
            "--timeout",
            &args.timeout.to_string(),
        ])
        // The demo's key stays in the work directory, not the user's cache.
        .env("XDG_CACHE_HOME", work.join("cache"))
        .stdin(Stdio::null());
    if args.browser {
        command.arg("--browser");
        if let Some(dir) = &args.novnc_dir {
            command.arg("--novnc-dir").arg(dir);
        }
    } else if display.is_none() {
        let alias = work.join("bin").join(snapshot::ALIAS);
        std::fs::create_dir_all(alias.parent().unwrap_or(work))?;
        match std::fs::remove_file(&alias) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
            _ => {}
        }
        std::os::unix::fs::symlink(exe, &alias)
            .with_context(|| format!("cannot create {}", alias.display()))?;
        command
            .arg("--viewer")
            .arg(&alias)
            .env("OLIVE2022_SNAPSHOT_OUTPUT", screenshot)
            .env(
                "OLIVE2022_SNAPSHOT_TIMEOUT",
                args.timeout.min(MAX_SNAPSHOT_WAIT).to_string(),
            )
            .env(
                "OLIVE2022_SNAPSHOT_HOLD",
                if args.keep_running { "true" } else { "false" },
            );
    }
    command.arg(DEMO_URL);
    let mut child = command.spawn().context("cannot run olive2022 launch")?;
    let status = wait_child(&mut child)?;
    if interrupt::requested() {
        return Ok(Launched::Interrupted);
    }
    if !status.success() {
        bail!("olive2022 launch or its viewer failed ({status})");
    }
    if display.is_some() || args.browser {
        if args.keep_running {
            println!(
                "The cloudlet keeps running: XDG_CACHE_HOME={} {} launch --tier1-url {tier1} {DEMO_URL}",
                work.join("cache").display(),
                exe.display()
            );
            println!("Press Ctrl-C to stop it");
            while !interrupt::requested() {
                std::thread::sleep(Duration::from_millis(100));
            }
            return Ok(Launched::Interrupted);
        }
        return Ok(if args.browser {
            Launched::Browser
        } else {
            Launched::Viewer
        });
    }
    let (width, height) = png_size(screenshot)?;
    Ok(Launched::Screenshot { width, height })
}

/// Whether `path` was modified after `since`.
fn written_since(path: &Path, since: Instant) -> bool {
    let since = std::time::SystemTime::now() - since.elapsed();
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .is_ok_and(|modified| modified >= since)
}

/// The width and height in a PNG's header.
fn png_size(path: &Path) -> Result<(u32, u32)> {
    let file = File::open(path).with_context(|| format!("no screenshot at {}", path.display()))?;
    rfb::screenshot::png_size(std::io::BufReader::new(file))
        .with_context(|| format!("{} is not a PNG", path.display()))
}
