//! `--json`: what scripts read. Every line of standard output is one JSON
//! object of the libraries' types (`convert::JobOutcome`, `convert::Plan`,
//! `convert::ExtractPlan`, `launch::LaunchPlan`, `launch::Stage2Plan`,
//! `cloudlet::CloudletPlan`, `desktop::HandlerPlan`,
//! `vmnetx::url::VmIdentity`, and the demo's own `DemoPlan`), nothing else
//! is printed there, and a failed job is a line too; where only a dry run
//! has JSON, `--json` without one is refused. The
//! conversions go into a real registry (Debian's docker-registry), checked
//! with skopeo.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::de::DeserializeOwned;
use serde_json::Value;
use testkit::registry::TestRegistry;
use testkit::{ext4_disk, package, qcow2_of, run};

/// The demo's plan lives in the binary (the demo has no library): the
/// very file, so the JSON is read into the very type.
#[path = "../src/demo_plan.rs"]
mod demo_plan;

const URL: &str = "vmnetx+https://olivearchive.org/launch/abc123/package.nxpk";
const OTHER: &str = "vmnetx+https://olivearchive.org/launch/other/package.nxpk";

fn olive(args: &[&str], tmp: &Path) -> Output {
    olive_with(args, tmp, &[])
}

/// [`olive`] with more environment variables.
fn olive_with(args: &[&str], tmp: &Path, env: &[(&str, PathBuf)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(args)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .env("TMPDIR", tmp)
        .env_remove("OLIVE2022_CREDENTIALS")
        .env_remove("OLIVE2022_REGISTRY")
        .env_remove("OLIVE2022_TIER1_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Every stdout line as a `T`, also checked to be a JSON object.
fn lines<T: DeserializeOwned>(output: &Output) -> Vec<T> {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    stdout
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?} in {stdout}"));
            assert!(value.is_object(), "{line}");
            serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}: {line}"))
        })
        .collect()
}

fn uuid_of(url: &str) -> String {
    let output = olive(&["uuid", url], Path::new("/tmp"));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn uuid_json_names_the_canonical_url() {
    let output = olive(
        &[
            "uuid",
            "--json",
            "vmnetx://OliveArchive.org/launch/abc123/package.nxpk?token=secret",
        ],
        Path::new("/tmp"),
    );
    assert!(output.status.success(), "{output:?}");
    let [identity]: [vmnetx::url::VmIdentity; 1] = lines(&output).try_into().unwrap();
    assert_eq!(identity.url, URL);
    assert_eq!(identity.uuid, uuid_of(URL));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("secret"));
}

#[test]
fn launch_and_extract_dry_runs_print_their_plans() {
    let tmp = Path::new("/tmp");
    let output = olive(
        &[
            "-n",
            "launch",
            "--json",
            "--tier1-url",
            "http://127.0.0.1:9/x",
            URL,
        ],
        tmp,
    );
    assert!(output.status.success(), "{output:?}");
    let [plan]: [launch::LaunchPlan; 1] = lines(&output).try_into().unwrap();
    assert_eq!(
        (plan.url.as_str(), plan.tier1.as_str(), plan.vnc.as_str()),
        (URL, "http://127.0.0.1:9", "vmi-vnc:5900")
    );
    assert_eq!(plan.uuid, uuid_of(URL));
    // Without --dry-run there is no plan to print, and nothing is deployed.
    let output = olive(
        &["launch", "--json", "--tier1-url", "http://127.0.0.1:9", URL],
        tmp,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());

    let output = olive(
        &[
            "extract",
            "-n",
            "--json",
            "-o",
            "/nowhere/out.qcow2",
            "https://example.org/a.nxpk?key=secret",
        ],
        tmp,
    );
    assert!(output.status.success(), "{output:?}");
    let [plan]: [convert::ExtractPlan; 1] = lines(&output).try_into().unwrap();
    assert_eq!(plan.source, "https://example.org/a.nxpk");
    assert_eq!(plan.output, PathBuf::from("/nowhere/out.qcow2"));
}

/// A package of a small ext4 disk, a batch file of `URL PACKAGE` lines.
struct Fixture {
    dir: tempfile::TempDir,
    tmp: PathBuf,
    recipes: PathBuf,
    batch: PathBuf,
}

fn fixture(lines: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let qcow2 = qcow2_of(&ext4_disk(dir.path(), "16M"), &[]);
    let package_path = dir.path().join("vm.nxpk");
    package(&package_path, "Windows 3.1", &qcow2, "qcow2", false);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let batch = dir.path().join("batch.txt");
    let text: String = lines
        .iter()
        .map(|(url, file)| {
            let file = if file.is_empty() {
                package_path.to_str().unwrap()
            } else {
                file
            };
            format!("{url} {file}\n")
        })
        .collect();
    std::fs::write(&batch, text).unwrap();
    let recipes = dir.path().join("RECIPES");
    Fixture {
        dir,
        tmp,
        recipes,
        batch,
    }
}

#[test]
fn convert_dry_run_json_prints_one_plan_per_job() {
    let f = fixture(&[(URL, ""), (OTHER, "")]);
    let recipes = f.recipes.to_str().unwrap();
    let args = [
        "-n",
        "convert",
        "--json",
        "--registry",
        "registry.example/olive",
    ];
    let batch = ["--recipes", recipes, "--batch", f.batch.to_str().unwrap()];
    let output = olive(&[&args[..], &batch[..]].concat(), &f.tmp);
    assert!(output.status.success(), "{output:?}");
    let plans: Vec<convert::Plan> = lines(&output);
    assert_eq!(plans.len(), 2);
    for (plan, url) in plans.iter().zip([URL, OTHER]) {
        let uuid = uuid_of(url);
        assert_eq!(plan.url, url);
        assert_eq!(plan.image, format!("registry.example/olive/{uuid}:latest"));
        assert_eq!(plan.recipe, f.recipes.join(format!("{uuid}.yaml")));
        assert_eq!(plan.uuid, uuid);
    }
    assert!(!f.recipes.exists(), "a dry run writes nothing");
}

#[test]
fn convert_json_prints_every_job_and_the_failures_too() {
    let f = fixture(&[(URL, ""), (OTHER, "/nonexistent.nxpk")]);
    let registry = TestRegistry::start(None);
    let repo = format!("{}/olive", registry.host);
    let args = ["convert", "--json", "--yes", "--registry", &repo];
    let batch = [
        "--recipes",
        f.recipes.to_str().unwrap(),
        "--batch",
        f.batch.to_str().unwrap(),
    ];
    let output = olive(&[&args[..], &batch[..]].concat(), &f.tmp);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The same reason as the line's, causes included.
    assert!(
        stderr.contains("/nonexistent.nxpk: No such file"),
        "{stderr}"
    );

    let outcomes: Vec<convert::JobOutcome> = lines(&output);
    let [good, bad] = &outcomes[..] else {
        panic!("{outcomes:?}")
    };
    assert_eq!((good.url.as_str(), good.error.as_deref()), (URL, None));
    assert_eq!(good.uuid, uuid_of(URL));
    assert_eq!(good.name.as_deref(), Some("Windows 3.1"));
    let image = format!("{repo}/{}:latest", good.uuid);
    assert_eq!(good.image.as_deref(), Some(image.as_str()));
    let inspect: Value = serde_json::from_str(&run(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ],
    ))
    .unwrap();
    assert_eq!(inspect["Digest"].as_str(), good.digest.as_deref());
    let recipe = good.recipe.as_ref().unwrap();
    assert!(
        recipe.is_file() && recipe.starts_with(&f.recipes),
        "{recipe:?}"
    );
    assert_eq!(good.virtual_size, Some(16 << 20));
    assert!(good.disk_size.unwrap() > 0 && good.layer_size.unwrap() > good.disk_size.unwrap());
    assert_eq!(good.uploaded, Some(true));
    assert!(good.seconds > 0.0);

    assert_eq!(
        (bad.url.as_str(), bad.uuid.clone()),
        (OTHER, uuid_of(OTHER))
    );
    assert!(
        bad.error.as_ref().unwrap().contains("/nonexistent.nxpk"),
        "{bad:?}"
    );
    assert_eq!(
        (&bad.digest, &bad.image, &bad.recipe),
        (&None, &None, &None)
    );
    // The field is there, as null, for scripts that test `.error == null`.
    let first = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&first).unwrap()["error"],
        Value::Null
    );
    assert!(first.contains("\"error\":null"), "{first}");
    drop(f.dir);
}

#[test]
fn stage2_dry_run_json_names_the_viewer_command() {
    let tmp = Path::new("/tmp");
    let output = olive(&["-n", "stage2", "--json", "--viewer", "/bin/true"], tmp);
    assert!(output.status.success(), "{output:?}");
    let [plan]: [launch::Stage2Plan; 1] = lines(&output).try_into().unwrap();
    assert_eq!(plan.vnc, "vmi-vnc:5900");
    assert_eq!(plan.viewer, PathBuf::from("/bin/true"));
    assert_eq!(plan.command, ["/bin/true", "vnc://vmi-vnc:5900"]);
    // Without --dry-run it would wait for a VM: refused before anything.
    let output = olive(&["stage2", "--json", "--viewer", "/bin/true"], tmp);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--dry-run"));
}

#[test]
fn cloudlet_dry_run_json_names_its_addresses_and_directories() {
    let home = tempfile::tempdir().unwrap();
    let serve = [
        "cloudlet",
        "--json",
        "--listen",
        "127.0.0.1:18080",
        "--wg-listen",
        "0.0.0.0:15182",
        "--recipes",
        "/srv/RECIPES",
        "--data-dir",
        "/srv/keys",
        "--cache-dir",
        "/srv/images",
    ];
    let output = olive(&[&["-n"], &serve[..]].concat(), home.path());
    assert!(output.status.success(), "{output:?}");
    let [plan]: [cloudlet::CloudletPlan; 1] = lines(&output).try_into().unwrap();
    assert_eq!(plan.api.to_string(), "127.0.0.1:18080");
    assert_eq!(plan.wireguard.to_string(), "0.0.0.0:15182");
    assert_eq!(plan.public_endpoint, "127.0.0.1:15182");
    assert_eq!(plan.recipes, PathBuf::from("/srv/RECIPES"));
    assert_eq!(
        (plan.data_dir.as_path(), plan.cache_dir.as_path()),
        (Path::new("/srv/keys"), Path::new("/srv/images"))
    );
    assert!(
        !Path::new("/srv/keys").exists(),
        "a dry run creates nothing"
    );
    // Without --dry-run it would serve: refused before binding anything.
    let output = olive(&serve, home.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
}

/// HOME and the four XDG variables, all inside `dir`.
fn desktop_env(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    [
        ("HOME", "home"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_DIRS", "sys"),
        ("XDG_CONFIG_DIRS", "etc-xdg"),
    ]
    .map(|(name, sub)| (name, dir.join(sub)))
    .to_vec()
}

#[test]
fn install_and_uninstall_dry_runs_print_their_plans() {
    use desktop::plan::HandlerEdit;
    let dir = tempfile::tempdir().unwrap();
    let env = desktop_env(dir.path());
    let entry = dir.path().join("data/applications/olive2022.desktop");
    let mimeapps = dir.path().join("config/mimeapps.list");

    let output = olive_with(&["-n", "install", "--json"], dir.path(), &env);
    assert!(output.status.success(), "{output:?}");
    let [plan]: [desktop::HandlerPlan; 1] = lines(&output).try_into().unwrap();
    let [file] = &plan.write[..] else {
        panic!("{plan:?}")
    };
    assert_eq!(file.path, entry);
    assert!(file.text.contains(" launch %u"), "{}", file.text);
    let [set] = &plan.default_handler[..] else {
        panic!("{plan:?}")
    };
    assert_eq!((&set.mimeapps, set.edit), (&mimeapps, HandlerEdit::Set));
    assert_eq!(set.types, desktop::SCHEME_TYPES);
    assert!(plan.remove.is_empty() && !entry.exists(), "{plan:?}");

    let output = olive_with(&["install"], dir.path(), &env);
    assert!(output.status.success(), "{output:?}");
    let output = olive_with(&["uninstall", "-n", "--json"], dir.path(), &env);
    assert!(output.status.success(), "{output:?}");
    let [plan]: [desktop::HandlerPlan; 1] = lines(&output).try_into().unwrap();
    assert_eq!(plan.remove, [entry.as_path()]);
    let [unset] = &plan.default_handler[..] else {
        panic!("{plan:?}")
    };
    assert_eq!(
        (&unset.mimeapps, unset.edit),
        (&mimeapps, HandlerEdit::Unset)
    );
    assert!(plan.write.is_empty() && entry.exists(), "{plan:?}");

    // Without --dry-run the JSON would have nothing to say: refused, and
    // the handler stays.
    let output = olive_with(&["uninstall", "--json"], dir.path(), &env);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty() && entry.exists());
}

#[test]
fn demo_dry_run_json_says_how_the_screen_is_shown() {
    use demo_plan::{DemoPlan, DemoShow};
    let tmp = Path::new("/tmp");
    let demo = ["demo", "--json", "--work-dir", "/nowhere/demo"];
    let headless = ["--headless", "--screenshot", "/nowhere/demo.png"];
    let output = olive(&[&["-n"], &demo[..], &headless[..]].concat(), tmp);
    assert!(output.status.success(), "{output:?}");
    let [plan]: [DemoPlan; 1] = lines(&output).try_into().unwrap();
    assert_eq!(plan.uuid, uuid_of(&plan.url));
    assert_eq!(plan.work_dir.as_deref(), Some(Path::new("/nowhere/demo")));
    assert_eq!((plan.accel.as_str(), plan.keep_running), ("tcg", false));
    let png = PathBuf::from("/nowhere/demo.png");
    assert_eq!(plan.show, DemoShow::Screenshot { path: png });

    let output = olive(
        &["-n", "demo", "--json", "--browser", "--keep-running"],
        tmp,
    );
    let [plan]: [DemoPlan; 1] = lines(&output).try_into().unwrap();
    assert_eq!(
        (plan.show, plan.work_dir, plan.keep_running),
        (DemoShow::Browser, None, true)
    );
    // Without --dry-run the demo would build and run a VM: refused first.
    let output = olive(&[&demo[..], &headless[..]].concat(), tmp);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty() && !Path::new("/nowhere").exists());
}
