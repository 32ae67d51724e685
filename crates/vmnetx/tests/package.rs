#![allow(clippy::unwrap_used)]
//! Tests of package opening, domain parsing and reference files.
//!
//! Packages are built here with the `zip` crate's writer in temporary
//! directories; malformed ones are made by patching the bytes of a valid
//! one.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vmnetx::bus::DiskBus;
use vmnetx::domain::{DiskFormat, Domain, DomainError};
use vmnetx::package::{DiskMember, Package, PackageError};
use vmnetx::reference::{ReferenceError, looks_like_reference, parse_reference};
use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, ZipWriter};

const MANIFEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<image xmlns="http://olivearchive.org/xmlns/vmnetx/package" name="Windows 3.1">
  <domain path="domain.xml"/>
  <disk path="disk.img"/>
  <memory path="memory.img"/>
</image>
"#;

const DOMAIN: &str = r#"<domain type="kvm">
  <name>machine</name>
  <memory unit="MiB">256</memory>
  <vcpu>2</vcpu>
  <os><type arch="i686" machine="pc-1.0">hvm</type></os>
  <devices>
    <disk type="file" device="cdrom"><target dev="hdc" bus="usb"/></disk>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2"/>
      <source file="/disk.img"/>
      <target dev="hda" bus="ide"/>
    </disk>
    <interface type="user"><model type="ne2k_pci"/></interface>
  </devices>
</domain>
"#;

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"#;

/// Disk contents: a pattern that does not repeat quickly and contains no
/// ZIP signature.
fn disk_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// One member of a test package.
struct Member<'a> {
    name: &'a str,
    data: Vec<u8>,
    method: CompressionMethod,
    large: bool,
}

fn stored(name: &str, data: impl Into<Vec<u8>>) -> Member<'_> {
    Member {
        name,
        data: data.into(),
        method: CompressionMethod::Stored,
        large: false,
    }
}

fn deflated(name: &str, data: impl Into<Vec<u8>>) -> Member<'_> {
    Member {
        method: CompressionMethod::Deflated,
        ..stored(name, data)
    }
}

/// Writes a ZIP with `members` and the VMNetX comment to `dir/p.nxpk`.
fn write_zip(dir: &Path, members: Vec<Member<'_>>) -> PathBuf {
    let path = dir.join("p.nxpk");
    let mut zip = ZipWriter::new(File::create(&path).unwrap());
    zip.set_comment("VMNetX package").unwrap();
    for member in members {
        let options = SimpleFileOptions::default()
            .compression_method(member.method)
            .large_file(member.large);
        zip.start_file(member.name, options).unwrap();
        zip.write_all(&member.data).unwrap();
    }
    zip.finish().unwrap();
    path
}

/// The members of a valid package with the given manifest, domain and disk.
fn members<'a>(manifest: &str, domain: &str, disk: Member<'a>) -> Vec<Member<'a>> {
    vec![
        stored("vmnetx-package.xml", manifest),
        stored("domain.xml", domain),
        disk,
        stored("memory.img", b"memory".to_vec()),
    ]
}

/// A package with `disk` and otherwise valid members.
fn with_disk(dir: &Path, disk: Member<'_>) -> PathBuf {
    write_zip(dir, members(MANIFEST, DOMAIN, disk))
}

/// A package with `manifest` and otherwise valid members.
fn with_manifest(dir: &Path, manifest: &str) -> PathBuf {
    write_zip(
        dir,
        members(manifest, DOMAIN, stored("disk.img", disk_bytes(1000))),
    )
}

/// A package with `domain` and otherwise valid members.
fn with_domain(dir: &Path, domain: &str) -> PathBuf {
    write_zip(
        dir,
        members(MANIFEST, domain, stored("disk.img", disk_bytes(1000))),
    )
}

/// Opens a package that must be rejected; returns the error message.
fn open_err(path: &Path) -> String {
    match Package::open(path) {
        Ok(package) => panic!("{} opened: {package:?}", path.display()),
        Err(e) => e.to_string(),
    }
}

fn assert_contains(message: &str, needle: &str) {
    assert!(
        message.contains(needle),
        "`{message}` does not contain `{needle}`"
    );
}

/// `assert_contains` for one case of a table, named in the failure.
fn assert_case_contains(case: &str, message: &str, needle: &str) {
    assert!(
        message.contains(needle),
        "{case}: `{message}` does not contain `{needle}`"
    );
}

/// The error message of a package with `manifest` and otherwise valid
/// members.
fn manifest_err(dir: &Path, manifest: &str) -> String {
    open_err(&with_manifest(dir, manifest))
}

/// The error message of a package with `domain` and otherwise valid members.
fn domain_err(dir: &Path, domain: &str) -> String {
    open_err(&with_domain(dir, domain))
}

/// `MANIFEST` with `from` replaced by `to`. `from` must be there, so that a
/// case cannot pass by testing the unedited manifest.
fn manifest_with(from: &str, to: &str) -> String {
    assert!(MANIFEST.contains(from), "`{from}` is not in MANIFEST");
    MANIFEST.replace(from, to)
}

/// Asserts that a package with each `(from, to, expected)` case's
/// `manifest_with(from, to)` is rejected with a message containing
/// `expected`.
fn assert_manifest_edits_rejected(dir: &Path, cases: &[(&str, &str, &str)]) {
    for &(from, to, expected) in cases {
        let message = manifest_err(dir, &manifest_with(from, to));
        assert_case_contains(&format!("`{from}` -> `{to}`"), &message, expected);
    }
}

fn u16_at(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

/// Offsets of the local and central headers of member `name`.
fn headers(bytes: &[u8], name: &str) -> (usize, usize) {
    let find = |signature: &[u8; 4], name_len_at: usize, name_at: usize| {
        (0..bytes.len().saturating_sub(name_at))
            .find(|&i| {
                bytes[i..].starts_with(signature)
                    && u16_at(bytes, i + name_len_at) == name.len()
                    && bytes[i + name_at..].starts_with(name.as_bytes())
            })
            .unwrap()
    };
    (find(b"PK\x03\x04", 26, 30), find(b"PK\x01\x02", 28, 46))
}

/// A patch to the bytes of a package, given the offsets of one member's
/// local and central headers.
type MemberPatch = fn(&mut [u8], usize, usize);

/// Applies `patch` to the bytes of the package at `path`, with the offsets
/// of the headers of member `name`.
fn patch_member(path: &Path, name: &str, patch: impl FnOnce(&mut [u8], usize, usize)) {
    let mut bytes = std::fs::read(path).unwrap();
    let (local, central) = headers(&bytes, name);
    patch(&mut bytes, local, central);
    std::fs::write(path, bytes).unwrap();
}

/// Opens a valid package (with a stored disk) after `patch` was applied to
/// its member `name`; returns the error message.
fn patched_member_err(
    dir: &Path,
    name: &str,
    patch: impl FnOnce(&mut [u8], usize, usize),
) -> String {
    let path = with_domain(dir, DOMAIN);
    patch_member(&path, name, patch);
    open_err(&path)
}

/// A valid package whose disk member is `content`, deflated.
fn with_deflated_disk(dir: &Path, content: Vec<u8>) -> PathBuf {
    with_disk(dir, deflated("disk.img", content))
}

/// Opens a package whose deflated disk of `disk_bytes(100_000)` was patched
/// by `patch`: the headers still pass at opening; reading the disk fails.
fn open_with_patched_deflated_disk(
    dir: &Path,
    patch: impl FnOnce(&mut [u8], usize, usize),
) -> Package {
    let path = with_deflated_disk(dir, disk_bytes(100_000));
    patch_member(&path, "disk.img", patch);
    Package::open(&path).unwrap()
}

/// Starts a package at `dir/p.nxpk` holding the stored manifest, `DOMAIN`
/// and a memory member, without the archive comment (it is not required),
/// for a test to add the disk member in a way `Member` cannot describe.
fn zip_without_disk(dir: &Path, manifest: &str, memory: &[u8]) -> (PathBuf, ZipWriter<File>) {
    let path = dir.join("p.nxpk");
    let mut zip = ZipWriter::new(File::create(&path).unwrap());
    for (name, data) in [
        ("vmnetx-package.xml", manifest.as_bytes()),
        ("domain.xml", DOMAIN.as_bytes()),
        ("memory.img", memory),
    ] {
        zip.start_file(name, stored_options()).unwrap();
        zip.write_all(data).unwrap();
    }
    (path, zip)
}

fn stored_options() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Stored)
}

/// Reads a whole deflated disk, returning the bytes or the error message.
fn read_disk(package: &Package) -> Result<Vec<u8>, String> {
    match package.disk().map_err(|e| e.to_string())? {
        DiskMember::Deflated { mut reader, .. } => {
            let mut out = Vec::new();
            reader
                .read_to_end(&mut out)
                .map_err(|e| format!("{:?}: {e}", e.kind()))?;
            Ok(out)
        }
        DiskMember::Stored {
            mut file,
            offset,
            len,
        } => {
            let mut out = vec![0; usize::try_from(len).unwrap()];
            file.seek(SeekFrom::Start(offset)).unwrap();
            file.read_exact(&mut out).map_err(|e| e.to_string())?;
            Ok(out)
        }
    }
}

// ---------------------------------------------------------------- valid

#[test]
fn valid_package_with_stored_disk() {
    let dir = tempfile::tempdir().unwrap();
    let content = disk_bytes(300_000);
    let path = with_disk(dir.path(), stored("disk.img", content.clone()));
    let package = Package::open(&path).unwrap();

    let manifest = package.manifest();
    assert_eq!(manifest.name, "Windows 3.1");
    assert_eq!(manifest.domain_path, "domain.xml");
    assert_eq!(manifest.disk_path, "disk.img");
    assert_eq!(manifest.memory_path.as_deref(), Some("memory.img"));
    assert_eq!(package.comment(), b"VMNetX package");

    let domain = package.domain();
    assert_eq!(domain.vcpus, 2);
    assert_eq!(domain.memory_bytes, 256 << 20);
    assert_eq!(domain.memory_mib(), 256);
    assert_eq!(domain.disk_bus, DiskBus::Ide);
    assert_eq!(domain.disk_bus.kubevirt(), "sata");
    assert_eq!(domain.disk_format, Some(DiskFormat::Qcow2));
    assert_eq!(domain.arch.as_deref(), Some("i686"));
    assert_eq!(domain.machine.as_deref(), Some("pc-1.0"));
    assert!(domain.has_network);

    let disk = package.disk().unwrap();
    assert_eq!(disk.len(), content.len() as u64);
    let DiskMember::Stored {
        mut file,
        offset,
        len,
    } = disk
    else {
        panic!("disk is not stored: {disk:?}");
    };
    assert_eq!(len, content.len() as u64);
    // The range of the package file itself, read independently.
    let whole = std::fs::read(&path).unwrap();
    let start = usize::try_from(offset).unwrap();
    assert_eq!(&whole[start..start + content.len()], &content[..]);
    // And through the returned handle, which is positioned at the offset.
    assert_eq!(file.stream_position().unwrap(), offset);
    let mut read = vec![0; content.len()];
    file.read_exact(&mut read).unwrap();
    assert_eq!(read, content);
}

#[test]
fn valid_package_with_deflated_members() {
    let dir = tempfile::tempdir().unwrap();
    let content = disk_bytes(1_000_000);
    let path = write_zip(
        dir.path(),
        vec![
            deflated("vmnetx-package.xml", MANIFEST),
            deflated("domain.xml", DOMAIN),
            deflated("disk.img", content.clone()),
            stored("memory.img", b"memory".to_vec()),
        ],
    );
    let package = Package::open(&path).unwrap();
    assert_eq!(package.manifest().name, "Windows 3.1");
    assert_eq!(package.domain().vcpus, 2);
    let disk = package.disk().unwrap();
    let DiskMember::Deflated { len, .. } = &disk else {
        panic!("disk is not deflated: {disk:?}");
    };
    assert_eq!(*len, content.len() as u64);
    assert_eq!(read_disk(&package).unwrap(), content);
    // disk() can be called again and gives an independent stream.
    assert_eq!(read_disk(&package).unwrap(), content);
}

#[test]
fn deflated_reader_is_send_and_static() {
    let dir = tempfile::tempdir().unwrap();
    let content = disk_bytes(50_000);
    let path = with_deflated_disk(dir.path(), content.clone());
    let disk = Package::open(&path).unwrap().disk().unwrap();
    // The package is gone; the reader moves to another thread.
    let DiskMember::Deflated { mut reader, .. } = disk else {
        panic!("disk is not deflated");
    };
    let read = std::thread::spawn(move || {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        out
    })
    .join()
    .unwrap();
    assert_eq!(read, content);
}

#[test]
fn empty_name_and_no_memory_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = r#"<image xmlns="http://olivearchive.org/xmlns/vmnetx/package" name="">
        <domain path="domain.xml"/><disk path="disk.img"/></image>"#;
    let path = write_zip(
        dir.path(),
        vec![
            stored("vmnetx-package.xml", manifest),
            stored("domain.xml", "<domain/>"),
            stored("disk.img", disk_bytes(10)),
        ],
    );
    let package = Package::open(&path).unwrap();
    assert_eq!(package.manifest().name, "");
    assert_eq!(package.manifest().memory_path, None);
}

#[test]
fn zip64_members_are_located() {
    // A member of 4 GiB or more takes too long to write: members written
    // with large_file(true) carry ZIP64 extra fields all the same.
    let dir = tempfile::tempdir().unwrap();
    let content = disk_bytes(200_000);
    let large = |mut member: Member<'static>| {
        member.large = true;
        member
    };
    for disk in [
        large(stored("disk.img", content.clone())),
        large(deflated("disk.img", content.clone())),
    ] {
        let method = disk.method;
        let path = write_zip(
            dir.path(),
            vec![
                large(stored("vmnetx-package.xml", MANIFEST)),
                large(deflated("domain.xml", DOMAIN)),
                disk,
                large(stored("memory.img", b"memory".to_vec())),
            ],
        );
        // The disk's local header has a ZIP64 extra field (id 1).
        let bytes = std::fs::read(&path).unwrap();
        let (local, _) = headers(&bytes, "disk.img");
        assert!(u16_at(&bytes, local + 28) >= 4, "no extra field");
        assert_eq!(u16_at(&bytes, local + 30 + "disk.img".len()), 1);

        let package = Package::open(&path).unwrap();
        assert_eq!(package.domain().vcpus, 2);
        assert_eq!(read_disk(&package).unwrap(), content);
        match (method, package.disk().unwrap()) {
            (CompressionMethod::Stored, DiskMember::Stored { offset, len, .. }) => {
                let start = usize::try_from(offset).unwrap();
                assert_eq!(len, content.len() as u64);
                assert_eq!(&bytes[start..start + content.len()], &content[..]);
            }
            (CompressionMethod::Deflated, DiskMember::Deflated { len, .. }) => {
                assert_eq!(len, content.len() as u64);
            }
            (method, disk) => panic!("{method:?} member gave {disk:?}"),
        }
    }
}

// ------------------------------------------------------- not a package

#[test]
fn missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let message = open_err(&dir.path().join("absent.nxpk"));
    assert_contains(&message, "cannot open package");
}

#[test]
fn directory_is_not_a_package() {
    let dir = tempfile::tempdir().unwrap();
    let message = open_err(dir.path());
    assert_contains(&message, "cannot open package");
    assert_contains(&message, "not a regular file");
}

#[test]
fn empty_file_is_not_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.nxpk");
    std::fs::write(&path, b"").unwrap();
    assert_contains(&open_err(&path), "not a VMNetX package: not a ZIP archive");
}

#[test]
fn non_zip_bytes_are_not_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.nxpk");
    for junk in [
        b"<reference xmlns=\"http://olivearchive.org/xmlns/vmnetx/reference\"/>".to_vec(),
        b"PK\x03\x04 not really".to_vec(),
        vec![0u8; 10_000],
        disk_bytes(100_000),
    ] {
        std::fs::write(&path, &junk).unwrap();
        assert_contains(&open_err(&path), "not a ZIP archive");
    }
}

#[test]
fn truncated_zip_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_disk(dir.path(), stored("disk.img", disk_bytes(5000)));
    let whole = std::fs::read(&path).unwrap();
    let len = whole.len();
    let cut_path = dir.path().join("cut.nxpk");
    for cut in [
        1,
        4,
        10,
        30,
        100,
        len / 2,
        len - 200,
        len - 100,
        len - 23,
        len - 22,
        len - 1,
    ] {
        std::fs::write(&cut_path, &whole[..cut]).unwrap();
        assert_contains(&open_err(&cut_path), "not a VMNetX package");
    }
}

#[test]
fn missing_manifest_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_zip(
        dir.path(),
        vec![
            stored("domain.xml", DOMAIN),
            stored("disk.img", disk_bytes(10)),
        ],
    );
    assert_eq!(
        open_err(&path),
        "not a VMNetX package: no member `vmnetx-package.xml`"
    );
}

// ------------------------------------------------------------ manifest

#[test]
fn manifest_in_foreign_namespace_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with("xmlns/vmnetx/package", "xmlns/other");
    let message = manifest_err(dir.path(), &manifest);
    assert_contains(&message, "invalid manifest `vmnetx-package.xml`");
    assert_contains(&message, "expected <image>");
}

#[test]
fn manifest_without_namespace_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with(
        r#" xmlns="http://olivearchive.org/xmlns/vmnetx/package""#,
        "",
    );
    assert!(!manifest.contains("xmlns"));
    assert_contains(&manifest_err(dir.path(), &manifest), "image (no namespace)");
}

#[test]
fn manifest_with_wrong_root_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with("<image", "<picture").replace("</image>", "</picture>");
    assert_contains(&manifest_err(dir.path(), &manifest), "expected <image>");
}

#[test]
fn manifest_without_name_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with(r#" name="Windows 3.1""#, "");
    assert_contains(
        &manifest_err(dir.path(), &manifest),
        "<image> has no `name` attribute",
    );
}

#[test]
fn manifest_without_disk_or_domain_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    const DISK: &str = r#"<disk path="disk.img"/>"#;
    assert_manifest_edits_rejected(
        dir.path(),
        &[
            (DISK, "", "no <disk> element"),
            (r#"<domain path="domain.xml"/>"#, "", "no <domain> element"),
            (DISK, "<disk/>", "<disk> has no `path` attribute"),
            (
                DISK,
                r#"<disk path="disk.img"/><disk path="memory.img"/>"#,
                "more than one <disk> element",
            ),
        ],
    );
}

#[test]
fn unsafe_member_paths_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (path, reason) in [
        ("../disk.img", "contains a `..` component"),
        ("a/../../disk.img", "contains a `..` component"),
        ("..", "contains a `..` component"),
        ("/disk.img", "is absolute"),
        ("/etc/passwd", "is absolute"),
        (r"dir\disk.img", "contains a backslash"),
        (r"C:\disk.img", "contains a backslash"),
        ("", "is empty"),
    ] {
        assert_manifest_edits_rejected(
            dir.path(),
            &[(
                r#"<disk path="disk.img"/>"#,
                &format!(r#"<disk path="{path}"/>"#),
                &format!("<disk> path `{path}` {reason}"),
            )],
        );
    }
    assert_manifest_edits_rejected(
        dir.path(),
        &[
            // XML cannot carry a NUL, not even as a character reference.
            (
                r#"<disk path="disk.img"/>"#,
                r#"<disk path="disk&#0;.img"/>"#,
                "not well-formed XML",
            ),
            // The domain and memory paths are checked the same way.
            (
                r#"path="memory.img""#,
                r#"path="../memory.img""#,
                "<memory> path `../memory.img`",
            ),
        ],
    );
}

#[test]
fn members_missing_from_the_zip_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_zip(
        dir.path(),
        vec![
            stored("vmnetx-package.xml", MANIFEST),
            stored("domain.xml", DOMAIN),
        ],
    );
    assert_eq!(
        open_err(&path),
        "member `disk.img` (the manifest's <disk>) is missing from the package"
    );
    assert_manifest_edits_rejected(
        dir.path(),
        &[
            (
                "memory.img",
                "other.img",
                "member `other.img` (the manifest's <memory>) is missing",
            ),
            (
                r#""domain.xml""#,
                r#""libvirt.xml""#,
                "member `libvirt.xml` (the manifest's <domain>) is missing",
            ),
        ],
    );
}

#[test]
fn malformed_manifest_xml_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for manifest in [
        "",
        "<image",
        "<image xmlns=\"http://olivearchive.org/xmlns/vmnetx/package\" name=\"x\">",
        "not xml at all",
        "<a></b>",
    ] {
        assert_contains(
            &manifest_err(dir.path(), manifest),
            "member `vmnetx-package.xml` is not well-formed XML",
        );
    }
    // Not UTF-8.
    let bytes = b"<image name=\"\xff\"/>".to_vec();
    let path = write_zip(
        dir.path(),
        vec![
            stored("vmnetx-package.xml", bytes),
            stored("domain.xml", DOMAIN),
            stored("disk.img", disk_bytes(10)),
        ],
    );
    assert_eq!(
        open_err(&path),
        "member `vmnetx-package.xml` is not UTF-8 text"
    );
}

#[test]
fn billion_laughs_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let manifest = format!(
        "{BILLION_LAUGHS}<image xmlns=\"http://olivearchive.org/xmlns/vmnetx/package\" name=\"&lol9;\"><domain path=\"domain.xml\"/><disk path=\"disk.img\"/></image>"
    );
    assert_contains(
        &manifest_err(dir.path(), &manifest),
        "member `vmnetx-package.xml` is not well-formed XML",
    );
    let domain = format!("{BILLION_LAUGHS}<domain><name>&lol9;</name></domain>");
    assert_contains(
        &domain_err(dir.path(), &domain),
        "invalid domain description `domain.xml`: malformed domain XML",
    );
    assert!(matches!(Domain::parse(&domain), Err(DomainError::Xml(_))));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn oversized_xml_members_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let padding = format!("<!-- {} -->", "x".repeat(1 << 20));
    let manifest = MANIFEST.replace("</image>", &format!("{padding}</image>"));
    assert_contains(
        &manifest_err(dir.path(), &manifest),
        "member `vmnetx-package.xml` is too large",
    );
    let domain = DOMAIN.replace("</domain>", &format!("{padding}</domain>"));
    assert_contains(
        &domain_err(dir.path(), &domain),
        "member `domain.xml` is too large",
    );
    // Just under the limit is fine.
    let small = format!("<!-- {} -->", "x".repeat((1 << 20) - 1000));
    let manifest = MANIFEST.replace("</image>", &format!("{small}</image>"));
    assert!(Package::open(&with_manifest(dir.path(), &manifest)).is_ok());
}

#[test]
fn invalid_domain_in_package_names_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let domain = DOMAIN.replace("<vcpu>2</vcpu>", "<vcpu>0</vcpu>");
    assert_eq!(
        domain_err(dir.path(), &domain),
        "invalid domain description `domain.xml`: invalid <vcpu> `0`: expected a whole number from 1 to 4294967295"
    );
    assert_contains(
        &domain_err(dir.path(), "<domain"),
        "invalid domain description `domain.xml`: malformed domain XML",
    );
}

// ------------------------------------------------------ member format

#[test]
fn encrypted_disk_member_is_an_error() {
    use zip::unstable::write::FileOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (path, mut zip) = zip_without_disk(dir.path(), MANIFEST, b"memory");
    let secret = stored_options()
        .with_deprecated_encryption(b"password")
        .unwrap();
    zip.start_file("disk.img", secret).unwrap();
    zip.write_all(&disk_bytes(1000)).unwrap();
    zip.finish().unwrap();
    assert_eq!(open_err(&path), "member `disk.img` is encrypted");
}

#[test]
fn encrypted_flag_is_an_error_in_either_header() {
    // Set bit 0 of the general-purpose flags ("encrypted") of a plain
    // member, in the central directory, the local header, or both: each is
    // refused (an AES member, which needs a crate feature to write, also
    // sets this bit). The manifest too.
    let dir = tempfile::tempdir().unwrap();
    for (member, in_local, in_central) in [
        ("disk.img", true, true),
        ("disk.img", false, true),
        ("disk.img", true, false),
        ("vmnetx-package.xml", true, true),
    ] {
        let message = patched_member_err(dir.path(), member, |bytes, local, central| {
            if in_local {
                bytes[local + 6] |= 1;
            }
            if in_central {
                bytes[central + 8] |= 1;
            }
        });
        assert_eq!(message, format!("member `{member}` is encrypted"));
    }
}

#[test]
fn unsupported_compression_method_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // Patch the method of a STORED member to 12 (bzip2), 14 (LZMA) or an
    // unassigned 77, in both headers.
    for (method, shown) in [
        (12u8, "12 (Bzip2)"),
        (14, "14 (Lzma)"),
        (77, "77 (Unknown)"),
    ] {
        let message = patched_member_err(dir.path(), "disk.img", |bytes, local, central| {
            bytes[local + 8] = method;
            bytes[central + 10] = method;
        });
        assert_eq!(
            message,
            format!(
                "member `disk.img` uses unsupported compression method {shown} (only STORED and DEFLATE are supported)"
            )
        );
    }
}

#[test]
fn local_header_disagreeing_with_central_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, MemberPatch, &str); 3] = [
        (
            "different method in the local header",
            |bytes, local, _| bytes[local + 8] = 8,
            "member `disk.img` is corrupt: its local header says compression method 8",
        ),
        (
            "different name in the local header",
            |bytes, local, _| bytes[local + 30] = b'D',
            "member `disk.img` is corrupt: its local header names `Disk.img`",
        ),
        (
            "central directory pointing at the wrong place",
            |bytes, _, central| bytes[central + 42] = bytes[central + 42].wrapping_add(1),
            "member `disk.img` is corrupt",
        ),
    ];
    for (case, patch, expected) in cases {
        let message = patched_member_err(dir.path(), "disk.img", patch);
        assert_case_contains(case, &message, expected);
    }
}

#[test]
fn stored_member_running_past_the_data_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let message = patched_member_err(dir.path(), "disk.img", |bytes, _, central| {
        // Declare 1 GiB stored (both sizes).
        for at in [central + 20, central + 24] {
            bytes[at..at + 4].copy_from_slice(&(1u32 << 30).to_le_bytes());
        }
    });
    assert_contains(&message, "member `disk.img` is corrupt: its data (bytes");
}

#[test]
fn corrupt_deflate_stream_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let package = open_with_patched_deflated_disk(dir.path(), |bytes, local, _| {
        let data = local + 30 + u16_at(bytes, local + 26) + u16_at(bytes, local + 28);
        // BFINAL=1, BTYPE=11: a reserved (invalid) block type.
        bytes[data] = 0x07;
    });
    let message = read_disk(&package).unwrap_err();
    assert_contains(&message, "InvalidData: member `disk.img`: cannot read data");
}

#[test]
fn deflate_member_with_wrong_crc_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let package = open_with_patched_deflated_disk(dir.path(), |bytes, local, central| {
        bytes[local + 14] ^= 0x55;
        bytes[central + 16] ^= 0x55;
    });
    let message = read_disk(&package).unwrap_err();
    assert_contains(&message, "InvalidData: member `disk.img`: CRC-32 mismatch");
}

#[test]
fn deflate_member_with_wrong_size_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    for (delta, expected) in [
        (
            1i64,
            "data ends after 100000 bytes, but 100001 were declared",
        ),
        (-1, "data is longer than the 99999 bytes declared"),
    ] {
        let package = open_with_patched_deflated_disk(dir.path(), |bytes, local, central| {
            let size = u32::try_from(100_000 + delta).unwrap().to_le_bytes();
            bytes[local + 22..local + 26].copy_from_slice(&size);
            bytes[central + 24..central + 28].copy_from_slice(&size);
        });
        assert_eq!(
            package.disk().unwrap().len(),
            100_000u64.wrapping_add_signed(delta)
        );
        assert_contains(&read_disk(&package).unwrap_err(), expected);
    }
}

#[test]
fn stored_xml_member_with_wrong_crc_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let message = patched_member_err(dir.path(), "domain.xml", |bytes, local, central| {
        bytes[local + 14] ^= 1;
        bytes[central + 16] ^= 1;
    });
    assert_contains(&message, "member `domain.xml` is corrupt: CRC-32 mismatch");
}

#[test]
fn directory_member_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with(r#""disk.img""#, r#""disks/""#);
    let (path, mut zip) = zip_without_disk(dir.path(), &manifest, b"");
    zip.add_directory("disks/", stored_options()).unwrap();
    zip.finish().unwrap();
    assert_eq!(open_err(&path), "member `disks/` is a directory");
}

// -------------------------------------------------------------- domain

#[test]
fn domain_defaults_when_elements_are_absent() {
    let domain = Domain::parse("<domain/>").unwrap();
    assert_eq!(
        domain,
        Domain {
            vcpus: 1,
            memory_bytes: 65536 * 1024,
            disk_bus: DiskBus::Ide,
            disk_format: None,
            arch: None,
            machine: None,
            has_network: false,
        }
    );
    assert_eq!(domain.memory_mib(), 64);
    // A disk without driver or target, and an os/type without attributes.
    let domain =
        Domain::parse("<domain><os><type>hvm</type></os><devices><disk/></devices></domain>")
            .unwrap();
    assert_eq!(domain.disk_bus, DiskBus::Ide);
    assert_eq!(domain.disk_format, None);
    assert_eq!(domain.arch, None);
    assert!(!domain.has_network);
}

#[test]
fn domain_root_must_be_domain() {
    for xml in [
        "<domains/>",
        "<domain xmlns=\"http://example.com/\"/>",
        "<image xmlns=\"http://olivearchive.org/xmlns/vmnetx/package\"/>",
    ] {
        assert!(
            matches!(Domain::parse(xml), Err(DomainError::NotDomain(_))),
            "{xml}"
        );
    }
    assert!(matches!(
        Domain::parse("<domain>"),
        Err(DomainError::Xml(_))
    ));
    assert!(matches!(Domain::parse(""), Err(DomainError::Xml(_))));
}

fn vcpus(text: &str) -> Result<u32, DomainError> {
    Domain::parse(&format!(
        "<domain><vcpu placement=\"static\">{text}</vcpu></domain>"
    ))
    .map(|d| d.vcpus)
}

#[test]
fn vcpu_counts() {
    assert_eq!(vcpus("1").unwrap(), 1);
    assert_eq!(vcpus(" 4\n").unwrap(), 4);
    // Beyond vmnetx::limits (1 to 64) the package still reads, so convert
    // can warn; check_limits says a cloudlet would refuse it.
    for (text, runnable) in [("64", true), ("65", false), ("513", false)] {
        let domain = Domain::parse(&format!("<domain><vcpu>{text}</vcpu></domain>")).unwrap();
        assert_eq!(domain.check_limits().is_ok(), runnable, "{text}");
    }
    for bad in [
        "-1",
        "0",
        "99999999999",
        "18446744073709551616",
        "two",
        "",
        "+2",
        "2.0",
        "0x2",
    ] {
        let error = vcpus(bad).unwrap_err();
        assert!(matches!(error, DomainError::Vcpu(_)), "{bad}: {error}");
        assert_eq!(
            error.to_string(),
            format!("invalid <vcpu> `{bad}`: expected a whole number from 1 to 4294967295")
        );
    }
}

fn memory(value: &str, unit: Option<&str>) -> Result<u64, DomainError> {
    let unit = unit.map(|u| format!(" unit=\"{u}\"")).unwrap_or_default();
    Domain::parse(&format!("<domain><memory{unit}>{value}</memory></domain>"))
        .map(|d| d.memory_bytes)
}

#[test]
fn memory_with_every_unit() {
    let table: &[(&str, &str, u64)] = &[
        ("b", "20971520", 20 << 20),
        ("bytes", "20971520", 20 << 20),
        ("byte", "20971520", 20 << 20),
        ("KB", "20000", 20_000_000),
        ("k", "20480", 20 << 20),
        ("K", "20480", 20 << 20),
        ("KiB", "20480", 20 << 20),
        ("MB", "30", 30_000_000),
        ("M", "30", 30 << 20),
        ("MiB", "30", 30 << 20),
        ("GB", "5", 5_000_000_000),
        ("G", "5", 5 << 30),
        ("GiB", "5", 5 << 30),
        ("TB", "1", 1_000_000_000_000),
        ("T", "1", 1 << 40),
        ("TiB", "1", 1 << 40),
        // libvirt compares units case-insensitively.
        ("mib", "70", 70 << 20),
        ("gb", "1", 1_000_000_000),
        ("Mb", "20", 20_000_000),
        ("BYTES", "16777216", 16 << 20),
    ];
    for &(unit, value, bytes) in table {
        assert_eq!(memory(value, Some(unit)).unwrap(), bytes, "{value} {unit}");
    }
    // No unit: KiB.
    assert_eq!(memory("524288", None).unwrap(), 512 << 20);
    assert_eq!(memory(" 16384 ", None).unwrap(), 16 << 20);
}

#[test]
fn memory_limits_and_errors() {
    // Bounds: vmnetx::limits, 16 MiB to 1 TiB inclusive, are checked apart.
    let runnable = |value: &str, unit: &str| {
        Domain::parse(&format!(
            "<domain><memory unit=\"{unit}\">{value}</memory></domain>"
        ))
        .unwrap()
        .check_limits()
        .is_ok()
    };
    assert!(runnable("16", "MiB"));
    assert!(runnable("1", "TiB"));
    for (value, unit) in [
        ("1023", "KiB"),
        ("1048575", "b"),
        ("1025", "GiB"),
        ("2", "TiB"),
        ("1", "PiB"),
        ("1", "E"),
    ] {
        assert!(!runnable(value, unit), "{value} {unit}");
    }
    // Zero and sizes that do not fit in 64 bits are not sizes at all.
    for (value, unit) in [
        ("0", None),
        ("0", Some("GiB")),
        // 2^70 KiB: does not even fit in 64 bits.
        ("1180591620717411303424", None),
        // 2^54 KiB: fits, but not once multiplied by 1024.
        ("18014398509481984", None),
        ("18446744073709551615", Some("EiB")),
    ] {
        let error = memory(value, unit).unwrap_err();
        assert!(
            matches!(error, DomainError::MemoryRange { .. }),
            "{value} {unit:?}: {error}"
        );
    }
    assert_eq!(
        memory("0", None).unwrap_err().to_string(),
        "<memory> of 0 KiB is not a size in bytes from 1 to 2^64 - 1"
    );
    for unit in ["XB", "KiBs", "kib ", "", "iB", "Ki", "B2", "kB2", "bits"] {
        let error = memory("1024", Some(unit)).unwrap_err();
        assert!(
            matches!(error, DomainError::MemoryUnit(_)),
            "{unit:?}: {error}"
        );
    }
    assert_eq!(
        memory("1", Some("XB")).unwrap_err().to_string(),
        "invalid <memory> unit `XB`"
    );
    for value in ["-1", "", "1.5", "one", "1e6", "+1024"] {
        let error = memory(value, None).unwrap_err();
        assert!(
            matches!(error, DomainError::MemoryValue(_)),
            "{value:?}: {error}"
        );
    }
}

#[test]
fn memory_mib_rounds_up() {
    let mib = |bytes: u64| {
        Domain::parse(&format!(
            "<domain><memory unit=\"b\">{bytes}</memory></domain>"
        ))
        .unwrap()
        .memory_mib()
    };
    assert_eq!(mib(16 << 20), 16);
    assert_eq!(mib((16 << 20) + 1), 17);
    assert_eq!(mib(18 << 20), 18);
    assert_eq!(mib((18 << 20) - 1), 18);
    // Defect 3 of the original: 256 MiB must not become 0.
    let domain = Domain::parse("<domain><memory unit='MiB'>256</memory></domain>").unwrap();
    assert_eq!(domain.memory_mib(), 256);
}

fn disk_domain(disk: &str) -> Result<Domain, DomainError> {
    Domain::parse(&format!("<domain><devices>{disk}</devices></domain>"))
}

#[test]
fn disk_bus_mapping() {
    for (bus, expected, kubevirt) in [
        ("ide", DiskBus::Ide, "sata"),
        ("sata", DiskBus::Sata, "sata"),
        ("virtio", DiskBus::Virtio, "virtio"),
        ("scsi", DiskBus::Scsi, "scsi"),
        ("usb", DiskBus::Usb, "usb"),
    ] {
        let domain = disk_domain(&format!(
            "<disk type='file' device='disk'><target dev='xda' bus='{bus}'/></disk>"
        ))
        .unwrap();
        assert_eq!(domain.disk_bus, expected);
        assert_eq!(domain.disk_bus.kubevirt(), kubevirt);
        assert_eq!(domain.disk_bus.to_string(), bus);
    }
    for bad in ["xen", "IDE", "fdc", "sd", ""] {
        let error =
            disk_domain(&format!("<disk><target dev='hda' bus='{bad}'/></disk>")).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("unsupported disk bus `{bad}` (expected ide, sata, virtio, scsi or usb)")
        );
    }
    // No bus: inferred from the target device name as libvirt does.
    for (dev, expected) in [
        ("hda", DiskBus::Ide),
        ("vda", DiskBus::Virtio),
        ("sda", DiskBus::Scsi),
        ("xvda", DiskBus::Ide),
    ] {
        let domain = disk_domain(&format!("<disk><target dev='{dev}'/></disk>")).unwrap();
        assert_eq!(domain.disk_bus, expected, "{dev}");
    }
}

#[test]
fn first_hard_disk_is_used() {
    // CD-ROMs and floppies are skipped; the first hard disk wins; a disk
    // without a device attribute is a hard disk.
    let domain = disk_domain(
        "<disk device='cdrom'><driver type='vmdk'/><target bus='xen'/></disk>\
         <disk device='floppy'><target bus='fdc'/></disk>\
         <disk><driver type='raw'/><target bus='virtio'/></disk>\
         <disk device='disk'><driver type='qcow2'/><target bus='scsi'/></disk>",
    )
    .unwrap();
    assert_eq!(domain.disk_bus, DiskBus::Virtio);
    assert_eq!(domain.disk_format, Some(DiskFormat::Raw));
}

#[test]
fn disk_formats() {
    for (format, expected) in [("qcow2", DiskFormat::Qcow2), ("raw", DiskFormat::Raw)] {
        let domain = disk_domain(&format!(
            "<disk><driver name='qemu' type='{format}'/></disk>"
        ))
        .unwrap();
        assert_eq!(domain.disk_format, Some(expected));
        assert_eq!(expected.to_string(), format);
    }
    for bad in ["vmdk", "QCOW2", "qcow", ""] {
        let error = disk_domain(&format!("<disk><driver type='{bad}'/></disk>")).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("unsupported disk format `{bad}` (expected qcow2 or raw)")
        );
    }
    let domain = disk_domain("<disk><driver name='qemu'/></disk>").unwrap();
    assert_eq!(domain.disk_format, None);
}

#[test]
fn os_type_and_network() {
    let domain = Domain::parse(
        "<domain><os><type arch='x86_64' machine='pc-i440fx-2.1'>hvm</type></os>\
         <devices><interface type='network'/></devices></domain>",
    )
    .unwrap();
    assert_eq!(domain.arch.as_deref(), Some("x86_64"));
    assert_eq!(domain.machine.as_deref(), Some("pc-i440fx-2.1"));
    assert!(domain.has_network);
    // An interface outside <devices> does not count.
    let domain = Domain::parse("<domain><interface/><devices/></domain>").unwrap();
    assert!(!domain.has_network);
}

#[test]
fn domain_parse_never_panics_on_odd_input() {
    for xml in [
        "<domain><vcpu/><memory/></domain>",
        "<domain><memory unit=''>1</memory></domain>",
        "<domain><devices><disk><target/><driver/></disk></devices></domain>",
        "<domain><os/></domain>",
        "\u{feff}<domain/>",
        "<?xml version='1.0'?><!DOCTYPE domain><domain/>",
        "<domain><vcpu>\u{661}</vcpu></domain>",
        "<domain><vcpu>&#x31;</vcpu></domain>",
    ] {
        let _ = Domain::parse(xml);
    }
    assert_eq!(vcpus("&#x31;").unwrap(), 1);
    assert!(Domain::parse("\u{feff}<domain/>").is_ok());
}

// ----------------------------------------------------------- reference

const REFERENCE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<reference xmlns="http://olivearchive.org/xmlns/vmnetx/reference">
  <url>
    https://olivearchive.org/media/packages/windows-3.1.nxpk
  </url>
</reference>
"#;

#[test]
fn valid_reference() {
    assert_eq!(
        parse_reference(REFERENCE).unwrap(),
        "https://olivearchive.org/media/packages/windows-3.1.nxpk"
    );
    for url in [
        "http://example.com/a.nxpk",
        "HTTPS://example.com/a.nxpk",
        "vmnetx://example.com/a.nxpk",
        "vmnetx+http://example.com/a.nxpk",
        "VMNetX+HTTPS://example.com/a.nxpk",
    ] {
        let xml = REFERENCE.replace(
            "https://olivearchive.org/media/packages/windows-3.1.nxpk",
            url,
        );
        assert_eq!(parse_reference(&xml).unwrap(), url);
    }
}

fn reference_with_url(url: &str) -> Result<String, ReferenceError> {
    parse_reference(&format!(
        "<reference xmlns=\"http://olivearchive.org/xmlns/vmnetx/reference\"><url>{url}</url></reference>"
    ))
}

#[test]
fn reference_schemes_are_restricted() {
    for url in [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "javascript:alert(1)",
        "ftp://example.com/a.nxpk",
        "vmnetx+file:///etc/passwd",
        "https:example.com",
        "https://",
        "https:///etc/passwd",
        "//example.com/a.nxpk",
        "example.com/a.nxpk",
        "data:text/plain,hi",
    ] {
        let error = reference_with_url(url).unwrap_err();
        assert!(
            matches!(error, ReferenceError::BadScheme(_)),
            "{url}: {error}"
        );
    }
    assert_eq!(
        reference_with_url("file:///etc/passwd")
            .unwrap_err()
            .to_string(),
        "VMNetX reference URL `file:///etc/passwd` is not an http, https or vmnetx URL"
    );
    assert!(matches!(
        reference_with_url("https://example.com/a b"),
        Err(ReferenceError::BadCharacters(_))
    ));
}

#[test]
fn bad_references() {
    assert!(matches!(
        reference_with_url(""),
        Err(ReferenceError::EmptyUrl)
    ));
    assert!(matches!(
        reference_with_url("  \n "),
        Err(ReferenceError::EmptyUrl)
    ));
    let foreign = REFERENCE.replace("xmlns/vmnetx/reference", "xmlns/vmnetx/package");
    assert!(matches!(
        parse_reference(&foreign),
        Err(ReferenceError::NotReference(_))
    ));
    let none = "<reference><url>https://example.com/a.nxpk</url></reference>";
    assert!(matches!(
        parse_reference(none),
        Err(ReferenceError::NotReference(_))
    ));
    let url_elsewhere = "<reference xmlns=\"http://olivearchive.org/xmlns/vmnetx/reference\"><url xmlns=\"\">https://example.com/</url></reference>";
    assert!(matches!(
        parse_reference(url_elsewhere),
        Err(ReferenceError::MissingUrl)
    ));
    assert!(matches!(
        parse_reference("<reference"),
        Err(ReferenceError::Xml(_))
    ));
    assert!(matches!(
        parse_reference(&format!("{BILLION_LAUGHS}<reference/>")),
        Err(ReferenceError::Xml(_))
    ));
}

#[test]
fn reference_sniffing() {
    assert!(looks_like_reference(REFERENCE.as_bytes()));
    assert!(looks_like_reference(
        b"\xef\xbb\xbf  \n<?xml version='1.0'?>"
    ));
    assert!(looks_like_reference(
        b"\n<reference xmlns=\"http://olivearchive.org/xmlns/vmnetx/reference\">"
    ));
    assert!(!looks_like_reference(b"PK\x03\x04<?xml"));
    assert!(!looks_like_reference(b"PK\x05\x06"));
    assert!(!looks_like_reference(b""));
    assert!(!looks_like_reference(b"   "));
    assert!(!looks_like_reference(b"<html>"));
    assert!(!looks_like_reference(b"<?xm"));

    // A real package is not a reference.
    let dir = tempfile::tempdir().unwrap();
    let path = with_domain(dir.path(), DOMAIN);
    assert!(!looks_like_reference(&std::fs::read(path).unwrap()));
}

#[test]
fn errors_are_debug_and_display() {
    // PackageError must be usable with `?` in anyhow-based code.
    fn is_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    let error = PackageError::MissingManifest;
    is_error(&error);
    is_error(&DomainError::Vcpu(String::new()));
    is_error(&ReferenceError::EmptyUrl);
}

#[test]
fn a_hundred_thousand_attributes_are_refused_at_once() {
    let attributes: String = (0..110_000).map(|i| format!(" a{i}=\"x\"")).collect();
    let xml = format!("<domain{attributes}><vcpu>1</vcpu></domain>");
    let started = std::time::Instant::now();
    let error = Domain::parse(&xml).unwrap_err();
    assert!(matches!(error, DomainError::Xml(_)), "{error}");
    assert!(error.to_string().contains("limit"), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // A real domain's few hundred attributes are fine.
    let fine: String = (0..300).map(|i| format!(" a{i}=\"x\"")).collect();
    assert!(Domain::parse(&format!("<domain{fine}/>")).is_ok());
}
