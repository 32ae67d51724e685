//! `cloudlet::settings`: the merge order, the defaults, and the typed
//! errors of a settings file.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cloudlet::SettingsError;
use cloudlet::settings::{
    AccelSetting, CloudletSettings, DEFAULT_LISTEN, DEFAULT_WG_LISTEN, MAX_SETTINGS_FILE,
};

#[test]
fn the_higher_source_wins_field_by_field() {
    let flags = CloudletSettings {
        max_vms: Some(3),
        ..CloudletSettings::default()
    };
    let file = CloudletSettings {
        max_vms: Some(1),
        idle_timeout: Some(11),
        accel: Some(AccelSetting::Tcg),
        ..CloudletSettings::default()
    };
    let merged = flags.or(file);
    assert_eq!(merged.max_vms, Some(3));
    assert_eq!(merged.idle_timeout, Some(11));
    assert_eq!(merged.accel, Some(AccelSetting::Tcg));
    assert_eq!(merged.listen, None);
}

#[test]
fn unset_fields_resolve_to_the_defaults() {
    let settings = CloudletSettings {
        data_dir: Some("/srv/keys".into()),
        cache_dir: Some("/srv/images".into()),
        ..CloudletSettings::default()
    };
    let config = settings.resolve().unwrap();
    assert_eq!(config.listen, DEFAULT_LISTEN);
    assert_eq!(config.wg_listen, DEFAULT_WG_LISTEN);
    assert_eq!(config.recipes_dir.to_str(), Some("RECIPES"));
    assert_eq!(config.max_vms, 4);
    assert_eq!(config.idle_timeout, Duration::from_secs(600));
    assert_eq!(config.accel, vmrunner::Accel::Auto);
    assert_eq!(config.public_endpoint(), "127.0.0.1:51820");
    assert_eq!(config.cache_dir.to_str(), Some("/srv/images"));
}

#[test]
fn a_file_is_read_with_its_paths_from_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloudlet.toml");
    std::fs::write(
        &path,
        "recipes = \"RECIPES\"\naccel = \"kvm\"\nregistry-ca = \"ca.pem\"\n",
    )
    .unwrap();
    let settings = CloudletSettings::from_file(&path).unwrap();
    assert_eq!(settings.recipes, Some(dir.path().join("RECIPES")));
    assert_eq!(settings.registry_ca, Some(dir.path().join("ca.pem")));
    assert_eq!(settings.accel, Some(AccelSetting::Kvm));
}

#[test]
fn bad_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloudlet.toml");

    std::fs::write(&path, "\nmax-vms = 2\nlisten = \"here\"\n").unwrap();
    match CloudletSettings::from_file(&path) {
        Err(SettingsError::Invalid {
            line, key, path: p, ..
        }) => {
            assert_eq!((line, key.as_deref()), (3, Some("listen")));
            assert_eq!(p, path);
        }
        other => panic!("{other:?}"),
    }

    std::fs::write(&path, vec![b'#'; MAX_SETTINGS_FILE as usize + 1]).unwrap();
    assert!(matches!(
        CloudletSettings::from_file(&path),
        Err(SettingsError::TooLarge { .. })
    ));
    // Exactly at the bound is fine.
    std::fs::write(&path, vec![b'#'; MAX_SETTINGS_FILE as usize]).unwrap();
    assert_eq!(
        CloudletSettings::from_file(&path).unwrap(),
        CloudletSettings::default()
    );

    std::fs::write(&path, b"accel = \"\xff\"\n").unwrap();
    assert!(matches!(
        CloudletSettings::from_file(&path),
        Err(SettingsError::Invalid { .. })
    ));
    assert!(matches!(
        CloudletSettings::from_file(dir.path()),
        Err(SettingsError::NotAFile { .. })
    ));
    assert!(matches!(
        CloudletSettings::from_file(&dir.path().join("missing.toml")),
        Err(SettingsError::Read { .. })
    ));
}
