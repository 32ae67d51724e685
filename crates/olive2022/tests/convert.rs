//! `olive2022 convert` against a real registry (Debian's docker-registry),
//! verified with skopeo, tar, qemu-img and the original tool's recipe code.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use testkit::credential_helper::{PASS_HELPER, PassStore};
use testkit::registry::TestRegistry;
use testkit::tls::TestCa;
use testkit::{assert_same_disk, ext4_disk, package, qcow2_of, run};

const URL: &str = "vmnetx+https://olivearchive.org/launch/abc123/package.nxpk";

struct Fixture {
    dir: tempfile::TempDir,
    raw: PathBuf,
    package: PathBuf,
    tmp: PathBuf,
    recipes: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let raw = ext4_disk(dir.path(), "40M");
    let qcow2 = qcow2_of(&raw, &[]);
    let package_path = dir.path().join("vm.nxpk");
    package(&package_path, "Windows 3.1", &qcow2, "qcow2", false);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let recipes = dir.path().join("RECIPES");
    Fixture {
        dir,
        raw,
        package: package_path,
        tmp,
        recipes,
    }
}

impl Fixture {
    /// Runs `olive2022 convert ARGS… URL PACKAGE` with TMPDIR in the fixture.
    fn convert(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_olive2022"));
        command
            .arg("convert")
            .args(["--recipes", self.recipes.to_str().unwrap()])
            .args(args)
            .args([URL, self.package.to_str().unwrap()])
            .env("TMPDIR", &self.tmp)
            .env_remove("OLIVE2022_CREDENTIALS")
            .env_remove("OLIVE2022_REGISTRY")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    }

    fn recipe_path(&self) -> PathBuf {
        self.recipes.join(format!("{}.yaml", uuid()))
    }

    fn assert_no_leftovers(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.tmp).unwrap().collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}

fn uuid() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(["uuid", URL])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn printed_digest(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.starts_with("Digest:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    line.trim_start_matches("Digest:").trim().to_owned()
}

/// The recipe as Python's `yaml.safe_load` (the loader Sinfonia uses) sees it.
fn safe_load(path: &Path) -> Value {
    let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    let python = testkit::oracle_python();
    serde_json::from_str(&run(
        python.to_str().unwrap(),
        &["-c", script, path.to_str().unwrap()],
    ))
    .unwrap()
}

/// The recipe the original olive2022 writes for the same VM: its own
/// `_create_recipe`, run in a scratch directory and loaded unsafely (it
/// holds a Python object tag).
fn original_recipe(registry: &str, deploy_token: Option<&str>) -> Value {
    let scratch = tempfile::tempdir().unwrap();
    let script = r#"
import argparse, json, os, sys, uuid, yaml
import olive2022
registry, token, name, uid = sys.argv[1:5]
args = argparse.Namespace(registry=registry, deploy_token=token or None)
# The original reads <memory unit="MiB">256</memory> as 256 KiB: 0 MiB.
olive2022._create_recipe(args, name, uuid.UUID(uid), 2, int("256") // 1024)
with open(os.path.join("RECIPES", uid + ".yaml")) as f:
    recipe = yaml.unsafe_load(f)
recipe["values"]["containerDisk"]["name"] = str(recipe["values"]["containerDisk"]["name"])
print(json.dumps(recipe))
"#;
    let output = Command::new(testkit::oracle_python())
        .current_dir(scratch.path())
        .args([
            "-c",
            script,
            registry,
            deploy_token.unwrap_or(""),
            "Windows 3.1",
            &uuid(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("the original olive2022 is needed (scripts/setup.sh): {e}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn skopeo_inspect(reference: &str) -> Value {
    serde_json::from_str(&run(
        "skopeo",
        &["inspect", "--tls-verify=false", reference],
    ))
    .unwrap()
}

/// Pulls the image with skopeo into an OCI layout and returns the layer.
fn pull_layer(reference: &str, into: &Path) -> PathBuf {
    let layout = into.join("pulled");
    run(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            reference,
            &format!("oci:{}:x", layout.display()),
        ],
    );
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    blob(manifest["layers"][0]["digest"].as_str().unwrap())
}

#[test]
fn converts_into_a_real_registry_and_independent_tools_agree() {
    let f = fixture();
    let registry = TestRegistry::start(None);
    let repo = format!("{}/olive", registry.host);
    let output = f.convert(&["--registry", &repo, "--yes"], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let digest = printed_digest(&output);
    let reference = format!("docker://{repo}/{}:latest", uuid());

    let inspect = skopeo_inspect(&reference);
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.title"],
        "Windows 3.1"
    );
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.url"],
        "https://olivearchive.org"
    );
    assert_eq!(
        inspect["Labels"]["org.olivearchive.sinfonia.uuid"],
        uuid().as_str()
    );

    // The layer: disk/ 0555 and disk/disk.qcow2 0444, both 107:107 (qemu).
    let layer = pull_layer(&reference, f.dir.path());
    let listing = run("tar", &["--numeric-owner", "-tvf", layer.to_str().unwrap()]);
    let lines: Vec<_> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(
        lines[0].starts_with("dr-xr-xr-x 107/107") && lines[0].ends_with(" disk/"),
        "{listing}"
    );
    assert!(
        lines[1].starts_with("-r--r--r-- 107/107") && lines[1].ends_with(" disk/disk.qcow2"),
        "{listing}"
    );
    let names = run("tar", &["-tvf", layer.to_str().unwrap()]);
    assert!(names.contains("qemu/qemu"), "{names}");
    let unpacked = f.dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    run(
        "tar",
        &[
            "-xf",
            layer.to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ],
    );
    assert_same_disk(&unpacked.join("disk/disk.qcow2"), &f.raw);

    // The recipe, as Sinfonia's safe loader reads it, against the original's.
    let recipe = safe_load(&f.recipe_path());
    let original = original_recipe(&repo, None);
    assert_eq!(recipe["description"], original["description"]);
    assert_eq!(recipe["chart"], original["chart"]);
    assert_eq!(recipe["version"], original["version"]);
    let (ours, theirs) = (&recipe["values"], &original["values"]);
    assert_eq!(
        ours["containerDisk"]["repository"],
        theirs["containerDisk"]["repository"]
    );
    assert_eq!(
        ours["containerDisk"]["name"],
        theirs["containerDisk"]["name"]
    );
    assert_eq!(ours["containerDisk"]["bus"], "sata", "ide maps to sata");
    assert_eq!(ours["containerDisk"]["tag"], "latest");
    assert_eq!(ours["containerDisk"]["digest"], digest.as_str());
    assert_eq!(
        ours["resources"]["requests"]["cpu"],
        theirs["resources"]["requests"]["cpu"]
    );
    assert_eq!(
        ours["resources"]["requests"]["memory"], "256Mi",
        "the domain says 256 MiB"
    );
    assert_eq!(
        theirs["resources"]["requests"]["memory"], "0Mi",
        "the original ignores units"
    );
    assert_eq!(ours["virtvnc"], theirs["virtvnc"]);
    // Documented fixes: `restricted` at the top level, not in values.
    assert_eq!(recipe["restricted"], false);
    assert_eq!(theirs["restricted"], false);
    assert!(ours.get("restricted").is_none());
    f.assert_no_leftovers();

    // Again: the registry has the layer, the digest is the same.
    let again = f.convert(&["--registry", &repo, "--yes"], &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(printed_digest(&again), digest);
    assert!(text(&again).contains("already"), "{}", text(&again));
}

#[test]
fn private_registry_with_credentials_and_a_deploy_token() {
    let f = fixture();
    let registry = TestRegistry::start(Some(("pusher", "s3cret")));
    let repo = format!("{}/private/olive", registry.host);
    let auth = f.dir.path().join("auth.json");
    let write_auth = |password: &str| {
        let token = base64_encode(&format!("pusher:{password}"));
        std::fs::write(
            &auth,
            format!(
                r#"{{"auths": {{"{}": {{"auth": "{token}"}}}}}}"#,
                registry.host
            ),
        )
        .unwrap();
    };

    write_auth("wrong");
    let output = f.convert(
        &["--registry", &repo, "--deploy-token", "deploy:tok3n"],
        &[("REGISTRY_AUTH_FILE", &auth)],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("401") || text(&output).to_lowercase().contains("auth"),
        "{}",
        text(&output)
    );
    assert!(!f.recipe_path().exists(), "no recipe after a failed push");
    f.assert_no_leftovers();

    write_auth("s3cret");
    let output = f.convert(
        &["--registry", &repo, "--deploy-token", "deploy:tok3n"],
        &[("REGISTRY_AUTH_FILE", &auth)],
    );
    assert!(output.status.success(), "{}", text(&output));
    let mode = std::fs::metadata(f.recipe_path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "a recipe with credentials is private");
    let recipe = safe_load(&f.recipe_path());
    let original = original_recipe(&repo, Some("deploy:tok3n"));
    assert_eq!(recipe["restricted"], true);
    assert_eq!(
        recipe["values"]["containerDiskCredentials"],
        original["values"]["containerDiskCredentials"],
        "same registry host (port included), user and password as the original"
    );
    assert_eq!(
        recipe["values"]["containerDiskCredentials"]["registry"],
        registry.host.as_str()
    );
    f.assert_no_leftovers();
}

fn base64_encode(text: &str) -> String {
    run("sh", &["-c", &format!("printf %s '{text}' | base64 -w0")])
}

#[test]
fn public_images_need_confirmation_and_dry_run_touches_nothing() {
    let f = fixture();
    let registry = TestRegistry::start(None);
    let repo = format!("{}/olive", registry.host);
    let output = f.convert(&["--registry", &repo], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("--yes"), "{}", text(&output));
    assert!(!f.recipes.exists());

    let output = f.convert(&["-n", "--registry", &repo], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let plan = text(&output);
    assert!(
        plan.contains(&uuid()) && plan.contains(&format!("{repo}/{}:latest", uuid())),
        "{plan}"
    );
    assert!(plan.contains(f.recipe_path().to_str().unwrap()), "{plan}");
    assert!(!f.recipes.exists(), "a dry run writes nothing");
    assert!(
        !registry
            .storage()
            .join("docker/registry/v2/repositories")
            .exists(),
        "a dry run pushes nothing"
    );
    f.assert_no_leftovers();
}

#[test]
fn registry_down_is_a_clear_error_without_recipe() {
    let f = fixture();
    let mut registry = TestRegistry::start(None);
    let repo = format!("{}/olive", registry.host);
    registry.stop();
    let output = f.convert(&["--registry", &repo, "--yes"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains(&registry.host), "{}", text(&output));
    assert!(!text(&output).contains("panicked"));
    assert!(!f.recipe_path().exists());
    f.assert_no_leftovers();
}

#[test]
fn oci_layout_output() {
    let f = fixture();
    let layout = f.dir.path().join("layout");
    let output = f.convert(&["--output", &format!("oci:{}", layout.display())], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let inspect: Value = serde_json::from_str(&run(
        "skopeo",
        &["inspect", &format!("oci:{}:{}", layout.display(), uuid())],
    ))
    .unwrap();
    assert_eq!(inspect["Digest"], printed_digest(&output).as_str());
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.title"],
        "Windows 3.1"
    );
    let bundle = f.dir.path().join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:{}", layout.display(), uuid()),
            bundle.to_str().unwrap(),
        ],
    );
    assert_same_disk(&bundle.join("rootfs/disk/disk.qcow2"), &f.raw);
    let recipe = safe_load(&f.recipe_path());
    assert_eq!(
        recipe["values"]["containerDisk"]["repository"],
        format!("oci:{}", layout.display()).as_str()
    );
}

#[test]
fn batch_continues_past_failures() {
    let f = fixture();
    let layout = f.dir.path().join("layout");
    let list = f.dir.path().join("batch.txt");
    let other = "vmnetx+https://olivearchive.org/launch/other/package.nxpk";
    std::fs::write(
        &list,
        format!(
            "# two good, one missing package\n{URL} {pkg}\n\n{other} {pkg}\nvmnetx+https://olivearchive.org/x.nxpk /nonexistent.nxpk\n",
            pkg = f.package.display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(["convert", "--recipes", f.recipes.to_str().unwrap()])
        .args([
            "--output",
            &format!("oci:{}", layout.display()),
            "--batch",
            list.to_str().unwrap(),
        ])
        .env("TMPDIR", &f.tmp)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.lines().filter(|line| line.contains(" ok ")).count(),
        2,
        "{stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|line| line.contains("FAILED"))
            .count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("2 converted, 1 failed"), "{stdout}");
    assert_eq!(std::fs::read_dir(&f.recipes).unwrap().count(), 2);
    f.assert_no_leftovers();
}

/// Ctrl-C while the upload waits to retry a failing registry: exit 130 as
/// every interrupted command does (not 1 with "transfer cancelled"), no
/// recipe and no temporary file left.
#[test]
fn ctrl_c_during_a_push_exits_130() {
    interrupt_a_push("-INT");
}

/// SIGTERM (`kill`, `systemctl stop`, `docker stop`) cleans up the same way.
#[test]
fn sigterm_during_a_push_exits_130() {
    interrupt_a_push("-TERM");
}

fn interrupt_a_push(signal: &str) {
    let f = fixture();
    // HEAD (does the blob exist?) gets 404; starting an upload always 503:
    // the client backs off and retries until interrupted.
    let registry = testkit::http::fake(|request| match request.method.as_str() {
        "HEAD" => testkit::http::Reply::Answer(404, vec![], vec![]),
        _ => testkit::http::Reply::Answer(503, vec![], b"busy".to_vec()),
    });
    let host = registry.base.trim_start_matches("http://").to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .arg("convert")
        .args(["--recipes", f.recipes.to_str().unwrap(), "--yes"])
        .args(["--registry", &format!("{host}/olive")])
        .args([URL, f.package.to_str().unwrap()])
        .env("TMPDIR", &f.tmp)
        .env("HOME", f.dir.path())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !registry
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|request| request.method == "POST")
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the push"
        );
        assert!(std::time::Instant::now() < deadline, "never pushed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    testkit::run("kill", &[signal, &child.id().to_string()]);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output));
    assert!(!f.recipe_path().exists());
    f.assert_no_leftovers();
}

/// `$DOCKER_CONFIG` with a `config.json` of `json`.
fn docker_config(f: &Fixture, name: &str, json: &Value) -> PathBuf {
    let dir = f.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
    dir
}

/// `DOCKER_CONFIG` and the variables of a pass store.
fn env_with<'a>(store_env: &'a [(String, PathBuf)], config: &'a Path) -> Vec<(&'a str, &'a Path)> {
    let mut env: Vec<(&str, &Path)> = vec![("DOCKER_CONFIG", config)];
    env.extend(store_env.iter().map(|(k, v)| (k.as_str(), v.as_path())));
    env
}

#[test]
fn credentials_from_a_real_credential_helper_and_a_401_that_says_where_it_looked() {
    let f = fixture();
    let registry = TestRegistry::start(Some(("pusher", "s3cret")));
    let repo = format!("{}/private/olive", registry.host);
    let store = PassStore::new();
    store.store(&registry.host, "pusher", "s3cret");
    let store_env: Vec<(String, PathBuf)> = store
        .env()
        .into_iter()
        .map(|(key, value)| (key.into_string().unwrap(), PathBuf::from(value)))
        .collect();
    let args = ["--registry", &repo, "--deploy-token", "deploy:tok3n"];

    let plain = docker_config(&f, "plain", &serde_json::json!({"auths": {}}));
    let output = f.convert(&args, &env_with(&store_env, &plain));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let said = text(&output);
    assert!(
        said.contains(&format!("no credentials configured for {}", registry.host))
            && said.contains(&plain.join("config.json").display().to_string()),
        "{said}"
    );
    assert!(!f.recipe_path().exists(), "no recipe after a failed push");

    let helped = docker_config(
        &f,
        "helped",
        &serde_json::json!({"credHelpers": {&registry.host: PASS_HELPER}}),
    );
    let output = f.convert(&args, &env_with(&store_env, &helped));
    assert!(output.status.success(), "{}", text(&output));
    assert!(!text(&output).contains("s3cret"));
    assert_eq!(safe_load(&f.recipe_path())["restricted"], true);
    f.assert_no_leftovers();
}

#[test]
fn https_registry_trusted_with_registry_ca_or_ssl_cert_file() {
    let f = fixture();
    let ca = TestCa::new("olive2022 test CA");
    let other = TestCa::new("another CA");
    let registry = TestRegistry::start_with(None, Some(&ca));
    let repo = format!("{}/olive", registry.host);
    let trusting = |file: &Path| {
        [
            "--registry",
            &repo,
            "--yes",
            "--registry-ca",
            file.to_str().unwrap(),
        ]
        .map(str::to_owned)
    };

    let wrong = trusting(&other.ca_pem);
    let wrong: Vec<&str> = wrong.iter().map(String::as_str).collect();
    let output = f.convert(&wrong, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let said = text(&output);
    assert!(
        said.contains("TLS") && said.contains(&registry.host) && said.contains("--registry-ca"),
        "{said}"
    );
    assert!(!f.recipe_path().exists());

    // The system's trust store, replaced by SSL_CERT_FILE, still counts.
    let output = f.convert(&wrong, &[("SSL_CERT_FILE", &ca.ca_pem)]);
    assert!(output.status.success(), "{}", text(&output));

    let right = trusting(&ca.ca_pem);
    let right: Vec<&str> = right.iter().map(String::as_str).collect();
    let output = f.convert(&right, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let image = safe_load(&f.recipe_path());
    assert!(
        image["values"]["containerDisk"]["repository"]
            .as_str()
            .is_some_and(|r| r.starts_with(&registry.host)),
        "{image:?}"
    );
    assert!(
        registry
            .storage()
            .join("docker/registry/v2/repositories/olive")
            .is_dir()
    );
    f.assert_no_leftovers();
}
