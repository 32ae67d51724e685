//! `olive2022 cloudlet`'s settings through the binary: flags over
//! `OLIVE2022_CLOUDLET_*` variables over the `--config` file over the
//! defaults, as `--print-config` shows them; systemd's directories; and
//! every kind of bad file refused with its name and line.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::settings::{olive_without, printed};

/// `olive2022 cloudlet ARGS` in a clean environment: no cloudlet variable
/// or systemd directory from the caller, the working directory, HOME and
/// the XDG directories in `home`, plus `env`.
fn cloudlet(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = olive_without("OLIVE2022_CLOUDLET_");
    command
        .arg("cloudlet")
        .args(args)
        .current_dir(home)
        .stdin(Stdio::null())
        .env_remove("STATE_DIRECTORY")
        .env_remove("CACHE_DIRECTORY")
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"));
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn string<'a>(table: &'a toml::Table, key: &str) -> &'a str {
    table[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key}: {table}"))
}

#[test]
fn flags_win_over_variables_over_the_file_over_the_defaults() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("cloudlet.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9001\"\n\
         recipes = \"/srv/file-recipes\"\n\
         wg-listen = \"127.0.0.1:9002\"\n\
         max-vms = 1\n\
         idle-timeout = 11\n\
         trusted-proxy = [\"10.0.0.0/8\"]\n\
         geoip-db = \"cities.mmdb\"\n",
    )
    .unwrap();
    let output = cloudlet(
        home.path(),
        &["--print-config", "--max-vms", "3"],
        &[
            // The file itself comes from a variable.
            ("OLIVE2022_CLOUDLET_CONFIG", file.to_str().unwrap()),
            ("OLIVE2022_CLOUDLET_RECIPES", "/srv/env-recipes"),
            ("OLIVE2022_CLOUDLET_WG_LISTEN", "127.0.0.1:9003"),
            ("OLIVE2022_CLOUDLET_MAX_VMS", "2"),
            (
                "OLIVE2022_CLOUDLET_TRUSTED_PROXY",
                "192.0.2.1,198.51.100.0/24",
            ),
        ],
    );
    let settings = printed(&output);
    // Flag over variable over file.
    assert_eq!(settings["max-vms"].as_integer(), Some(3));
    // Variable over file.
    assert_eq!(string(&settings, "recipes"), "/srv/env-recipes");
    assert_eq!(string(&settings, "wg-listen"), "127.0.0.1:9003");
    let proxies = settings["trusted-proxy"].as_array().unwrap();
    let proxies: Vec<&str> = proxies.iter().filter_map(|p| p.as_str()).collect();
    assert_eq!(proxies, ["192.0.2.1/32", "198.51.100.0/24"]);
    // File over default.
    assert_eq!(string(&settings, "listen"), "127.0.0.1:9001");
    assert_eq!(settings["idle-timeout"].as_integer(), Some(11));
    // A relative path in the file is taken from the file's directory.
    let geoip = home.path().join("cities.mmdb");
    assert_eq!(string(&settings, "geoip-db"), geoip.to_str().unwrap());
    // Defaults.
    assert_eq!(string(&settings, "accel"), "auto");
    assert_eq!(string(&settings, "lazy-pull"), "auto");
    assert_eq!(settings["lazy-threshold"].as_integer(), Some(256 << 20));
    let data = home.path().join("data/olive2022/cloudlet");
    let cache = home.path().join("cache/olive2022/cloudlet");
    assert_eq!(string(&settings, "data-dir"), data.to_str().unwrap());
    assert_eq!(string(&settings, "cache-dir"), cache.to_str().unwrap());
    // Unset, and said so: what clients are told instead.
    assert!(!settings.contains_key("public-endpoint"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("# public-endpoint = \"127.0.0.1:9003\""),
        "{text}"
    );
}

#[test]
fn without_a_file_every_key_has_its_default() {
    let home = tempfile::tempdir().unwrap();
    let settings = printed(&cloudlet(home.path(), &["--print-config"], &[]));
    let mut keys: Vec<&str> = settings.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "accel",
            "accept-clients",
            "cache-dir",
            "cache-max-bytes",
            "data-dir",
            "deploy-rate",
            "forward-timeout",
            "idle-timeout",
            "lazy-pull",
            "lazy-threshold",
            "listen",
            "local-network",
            "location",
            "max-vms",
            "recipes",
            "reject-clients",
            "tier1-url",
            "trusted-proxy",
            "wg-listen",
            "zeroconf",
        ]
    );
    assert_eq!(string(&settings, "listen"), "127.0.0.1:8080");
    assert_eq!(string(&settings, "wg-listen"), "0.0.0.0:51820");
    // Relative paths are printed absolute: the file may be saved anywhere.
    let recipes = home.path().join("RECIPES");
    assert_eq!(string(&settings, "recipes"), recipes.to_str().unwrap());
    assert_eq!(settings["max-vms"].as_integer(), Some(4));
    assert_eq!(settings["idle-timeout"].as_integer(), Some(600));
    assert_eq!(settings["deploy-rate"].as_integer(), Some(60));
    assert_eq!(settings["zeroconf"].as_bool(), Some(false));
}

#[test]
fn printed_settings_are_a_file_that_gives_them_back() {
    let home = tempfile::tempdir().unwrap();
    let args = ["--print-config", "--public-endpoint", "example.org:51820"];
    let first = cloudlet(home.path(), &args, &[("OLIVE2022_CLOUDLET_ACCEL", "tcg")]);
    assert!(first.status.success());
    let file = home.path().join("printed.toml");
    std::fs::write(&file, &first.stdout).unwrap();
    // Elsewhere: another HOME would change every default.
    let other = tempfile::tempdir().unwrap();
    let again = cloudlet(
        other.path(),
        &["--print-config", "--config", file.to_str().unwrap()],
        &[],
    );
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&first.stdout)
    );
    assert_eq!(string(&printed(&again), "accel"), "tcg");
}

#[test]
fn systemd_directories_are_the_default_data_and_cache_directories() {
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("STATE_DIRECTORY", "/var/lib/olive2022-cloudlet"),
        ("CACHE_DIRECTORY", "/var/cache/olive2022-cloudlet"),
    ];
    let settings = printed(&cloudlet(home.path(), &["--print-config"], &env));
    assert_eq!(string(&settings, "data-dir"), "/var/lib/olive2022-cloudlet");
    assert_eq!(
        string(&settings, "cache-dir"),
        "/var/cache/olive2022-cloudlet"
    );
    // A flag still wins.
    let settings = printed(&cloudlet(
        home.path(),
        &["--print-config", "--data-dir", "/srv/keys"],
        &env,
    ));
    assert_eq!(string(&settings, "data-dir"), "/srv/keys");
}

#[test]
fn relative_paths_in_the_file_are_taken_from_its_directory() {
    let home = tempfile::tempdir().unwrap();
    let etc = home.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(
        etc.join("cloudlet.toml"),
        "recipes = \"RECIPES\"\ncache-dir = \"/abs/cache\"\n",
    )
    .unwrap();
    let settings = printed(&cloudlet(
        home.path(),
        &[
            "--print-config",
            "--config",
            etc.join("cloudlet.toml").to_str().unwrap(),
        ],
        &[],
    ));
    let recipes = etc.join("RECIPES");
    assert_eq!(string(&settings, "recipes"), recipes.to_str().unwrap());
    assert_eq!(string(&settings, "cache-dir"), "/abs/cache");
}

#[test]
fn dry_run_shows_the_data_and_cache_directories() {
    let home = tempfile::tempdir().unwrap();
    let output = cloudlet(
        home.path(),
        &[
            "-n",
            "--data-dir",
            "/srv/keys",
            "--cache-dir",
            "/srv/images",
        ],
        &[],
    );
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Would keep keys and VMs in /srv/keys, images in /srv/images"),
        "{text}"
    );
    assert!(!Path::new("/srv/keys").exists());
}

/// A refused file: exit code 1, nothing on standard output, and an error
/// containing each of `parts`.
fn assert_refused(home: &Path, file: &Path, parts: &[&str]) {
    let output = cloudlet(
        home,
        &["--print-config", "--config", file.to_str().unwrap()],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    for part in parts {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }
}

#[test]
fn a_bad_settings_file_is_refused_with_its_name_and_line() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("bad.toml");
    let name = file.to_str().unwrap();

    std::fs::write(&file, "# settings\nmax-vms = 2\nmax-vm = 3\n").unwrap();
    assert_refused(
        home.path(),
        &file,
        &[name, "line 3", "`max-vm`", "unknown field"],
    );

    std::fs::write(&file, "listen = \"127.0.0.1:80\"\nmax-vms = \"four\"\n").unwrap();
    assert_refused(
        home.path(),
        &file,
        &[name, "line 2", "`max-vms`", "invalid type"],
    );

    std::fs::write(&file, "accel = \"hvf\"\n").unwrap();
    assert_refused(home.path(), &file, &[name, "line 1", "`accel`", "hvf"]);

    std::fs::write(&file, "trusted-proxy = [\"10.0.0.0/33\"]\n").unwrap();
    assert_refused(home.path(), &file, &["trusted-proxy", "10.0.0.0/33"]);

    std::fs::write(&file, "listen = [\n").unwrap();
    assert_refused(home.path(), &file, &[name, "line 1"]);

    let missing = home.path().join("missing.toml");
    assert_refused(
        home.path(),
        &missing,
        &[missing.to_str().unwrap(), "cannot read"],
    );

    assert_refused(
        home.path(),
        home.path(),
        &[home.path().to_str().unwrap(), "not a regular file"],
    );

    let comment = format!("# {}\n", "x".repeat(1000));
    std::fs::write(&file, comment.repeat(70)).unwrap();
    assert_refused(home.path(), &file, &[name, "larger than 65536 bytes"]);
}

#[test]
fn lazy_pulls_are_set_by_flag_variable_or_file_and_bad_modes_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("cloudlet.toml");
    std::fs::write(&file, "lazy-pull = \"always\"\nlazy-threshold = 1024\n").unwrap();
    let config = file.to_str().unwrap();
    let from_file = printed(&cloudlet(
        home.path(),
        &["--print-config", "--config", config],
        &[],
    ));
    assert_eq!(string(&from_file, "lazy-pull"), "always");
    assert_eq!(from_file["lazy-threshold"].as_integer(), Some(1024));
    let overridden = printed(&cloudlet(
        home.path(),
        &[
            "--print-config",
            "--config",
            config,
            "--lazy-threshold",
            "1G",
        ],
        &[("OLIVE2022_CLOUDLET_LAZY_PULL", "never")],
    ));
    assert_eq!(string(&overridden, "lazy-pull"), "never");
    assert_eq!(overridden["lazy-threshold"].as_integer(), Some(1 << 30));
    let refused = cloudlet(
        home.path(),
        &["--print-config", "--lazy-pull", "sometimes"],
        &[],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("auto, always, never"), "{stderr}");
    std::fs::write(&file, "lazy-pull = \"sometimes\"\n").unwrap();
    let bad_file = cloudlet(home.path(), &["--print-config", "--config", config], &[]);
    assert!(!bad_file.status.success());
}
