//! Hostile inputs found by an adversarial pass, each a regression test:
//! the answer is a clear error and nothing left behind that looks complete.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use testkit::{ext4_disk, hidden_files, package};

fn extract(package: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args([
            "extract",
            "-o",
            out.to_str().unwrap(),
            package.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Where a member's CRC-32 and uncompressed size are stored.
enum SizeField {
    /// The 32-bit field of the header.
    Plain(usize),
    /// The 64-bit field of the ZIP64 extra field (the header's says
    /// 0xFFFFFFFF).
    Zip64(usize),
}

/// Calls `edit(bytes, crc_at, size_field)` for the `disk.img` member's
/// local header and central directory entry.
fn patch_disk_member(package: &Path, edit: impl Fn(&mut Vec<u8>, usize, SizeField)) {
    let mut bytes = std::fs::read(package).unwrap();
    let name = b"disk.img";
    let positions: Vec<usize> = (0..bytes.len().saturating_sub(46))
        .filter(|&at| {
            bytes[at..].starts_with(b"PK\x03\x04") || bytes[at..].starts_with(b"PK\x01\x02")
        })
        .collect();
    let u16_at =
        |bytes: &[u8], at: usize| usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    let mut patched = 0;
    for at in positions {
        let central = bytes[at + 2] == 1;
        // Local header: CRC at 14, size at 22, name length at 26, extra
        // length at 28, name at 30. Central: 16, 24, 28, 30, 46.
        let (crc_at, size_at, name_len_at, extra_len_at, name_at) = if central {
            (16, 24, 28, 30, 46)
        } else {
            (14, 22, 26, 28, 30)
        };
        if u16_at(&bytes, at + name_len_at) != name.len()
            || !bytes[at + name_at..].starts_with(name)
        {
            continue;
        }
        let size = if bytes[at + size_at..at + size_at + 4] == [0xff; 4] {
            // The ZIP64 extra field (id 1) starts with the uncompressed size.
            let mut extra = at + name_at + name.len();
            let end = extra + u16_at(&bytes, at + extra_len_at);
            while u16_at(&bytes, extra) != 1 {
                extra += 4 + u16_at(&bytes, extra + 2);
                assert!(extra < end, "no ZIP64 extra field");
            }
            SizeField::Zip64(extra + 4)
        } else {
            SizeField::Plain(at + size_at)
        };
        edit(&mut bytes, at + crc_at, size);
        patched += 1;
    }
    assert_eq!(patched, 2, "disk.img has one local and one central header");
    std::fs::write(package, bytes).unwrap();
}

fn deflated_raw_package(dir: &Path) -> std::path::PathBuf {
    let raw = ext4_disk(dir, "40M");
    let path = dir.join("vm.nxpk");
    package(&path, "Deflated", &raw, "raw", true);
    path
}

#[test]
fn a_deflated_raw_disk_with_a_wrong_crc_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let package = deflated_raw_package(dir.path());
    patch_disk_member(&package, |bytes, crc, _| bytes[crc] ^= 0xff);
    let out = dir.path().join("out/vm.qcow2");
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let output = extract(&package, &out);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("CRC-32 mismatch"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
    assert!(hidden_files(&dir.path().join("out")).is_empty());
}

#[test]
fn a_deflated_raw_disk_larger_than_declared_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let package = deflated_raw_package(dir.path());
    // Declare 1 MiB less than the disk inflates to.
    patch_disk_member(&package, |bytes, _, size| match size {
        SizeField::Plain(at) => {
            let declared = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            bytes[at..at + 4].copy_from_slice(&(declared - (1 << 20)).to_le_bytes());
        }
        SizeField::Zip64(at) => {
            let declared = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
            bytes[at..at + 8].copy_from_slice(&(declared - (1 << 20)).to_le_bytes());
        }
    });
    let out = dir.path().join("vm.qcow2");
    let output = extract(&package, &out);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("longer than"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
}

#[test]
fn special_files_and_directories_are_refused_as_output() {
    let dir = tempfile::tempdir().unwrap();
    let raw = ext4_disk(dir.path(), "40M");
    let package_path = dir.path().join("vm.nxpk");
    package(&package_path, "Plain", &raw, "raw", false);

    let fifo = dir.path().join("fifo");
    testkit::run("mkfifo", &[fifo.to_str().unwrap()]);
    let device = dir.path().join("null");
    std::os::unix::fs::symlink("/dev/null", &device).unwrap();
    for (out, expected) in [
        (fifo.clone(), "not a regular file"),
        (device.clone(), "not a regular file"),
        (dir.path().to_owned(), "is a directory"),
    ] {
        let output = extract(&package_path, &out);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(
            stderr(&output).contains(expected),
            "{out:?}: {}",
            stderr(&output)
        );
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(
        std::fs::symlink_metadata(&device)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // `-o .` from inside a directory: the same clear message.
    let output = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(["extract", "-o", ".", package_path.to_str().unwrap()])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is a directory"),
        "{}",
        stderr(&output)
    );
    assert!(hidden_files(dir.path()).is_empty());
}

/// A qcow2 of `size` virtual bytes with nothing written: a few hundred KiB.
fn empty_qcow2(dir: &Path, size: &str) -> std::path::PathBuf {
    let image = dir.join(format!("empty-{size}.qcow2"));
    testkit::run(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", image.to_str().unwrap(), size],
    );
    image
}

#[test]
fn a_virtual_size_beyond_the_limit_is_refused_and_the_limit_can_be_raised() {
    let dir = tempfile::tempdir().unwrap();
    // Beyond the default of 2 TiB: refused at once, before any work.
    let huge = dir.path().join("huge.nxpk");
    package(
        &huge,
        "Huge",
        &empty_qcow2(dir.path(), "3T"),
        "qcow2",
        false,
    );
    let out = dir.path().join("huge.qcow2");
    let output = extract(&huge, &out);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("beyond the limit of 2048.0 GiB"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());

    // A lower limit refuses a 1 GiB disk that the default accepts.
    let small = dir.path().join("small.nxpk");
    package(
        &small,
        "Small",
        &empty_qcow2(dir.path(), "1G"),
        "qcow2",
        false,
    );
    let out = dir.path().join("small.qcow2");
    let limited = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(["extract", "--max-virtual-size", "512M", "-o"])
        .args([out.to_str().unwrap(), small.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(limited.status.code(), Some(1), "{}", stderr(&limited));
    assert!(
        stderr(&limited).contains("limit of 0.5 GiB"),
        "{}",
        stderr(&limited)
    );
    let output = extract(&small, &out);
    assert!(output.status.success(), "{}", stderr(&output));
    for bad in ["12X", "-1", "99999P"] {
        let output = Command::new(env!("CARGO_BIN_EXE_olive2022"))
            .args([
                "extract",
                "--max-virtual-size",
                bad,
                "-o",
                "x.qcow2",
                "y.nxpk",
            ])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad}: {}", stderr(&output));
    }
}

/// A deflated qcow2 member inflates to a spool file before it is read: a
/// member declaring far more bytes than its disk can need is refused before
/// anything is spooled.
#[test]
fn a_deflated_qcow2_far_larger_than_its_disk_is_refused_before_spooling() {
    let dir = tempfile::tempdir().unwrap();
    let image = empty_qcow2(dir.path(), "1M");
    // 200 MiB of zeros after the image: deflates to almost nothing.
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&image)
        .unwrap();
    file.set_len(file.metadata().unwrap().len() + (200 << 20))
        .unwrap();
    let package_path = dir.path().join("bomb.nxpk");
    package(&package_path, "Bomb", &image, "qcow2", true);
    assert!(std::fs::metadata(&package_path).unwrap().len() < 2 << 20);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = dir.path().join("bomb.qcow2");
    let output = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(["extract", "--tmp-dir", tmp.to_str().unwrap(), "-o"])
        .args([out.to_str().unwrap(), package_path.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("for a disk of only"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

/// A VM name holding a newline, a carriage return, a C1 control (CSI) and a
/// right-to-left override must not forge or hide output lines.
#[test]
fn control_and_bidi_characters_in_a_vm_name_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let raw = ext4_disk(dir.path(), "40M");
    let package_path = dir.path().join("vm.nxpk");
    let name = "Evil\nUUID: 00000000-0000-0000-0000-000000000000\r\u{9b}2J\u{202e}exe.txt";
    package(&package_path, name, &raw, "raw", false);
    let out = dir.path().join("vm.qcow2");
    let output = extract(&package_path, &out);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        !stdout.lines().any(|line| line.starts_with("UUID:")),
        "a forged line: {stdout}"
    );
    assert!(
        !stdout.contains(['\r', '\u{9b}', '\u{202e}']),
        "raw controls: {stdout:?}"
    );
    assert!(
        stdout.contains("Name:         Evil\\u{a}UUID: 00000000"),
        "{stdout}"
    );
    assert!(stdout.contains("\\u{202e}exe.txt"), "{stdout}");
}

/// Every error leaves through one place that escapes what it quotes: a URL
/// handed over by a web page is untrusted text.
#[test]
fn errors_quoting_untrusted_text_cannot_forge_lines() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(["launch", "--dry-run", "--tier1-url"])
        .arg("ftp://tier1.invalid\u{202e}/\nUUID: 00000000-0000-0000-0000-000000000000\r\u{9b}2J")
        .arg("vmnetx+https://x.example/a.nxpk")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = stderr(&output);
    assert!(
        stderr.contains("tier1.invalid"),
        "the URL is not quoted: {stderr}"
    );
    assert!(
        !stderr
            .lines()
            .any(|line| line.trim_start().starts_with("UUID:")),
        "a forged line: {stderr}"
    );
    assert!(!stderr.contains(['\r', '\u{9b}', '\u{202e}']), "{stderr:?}");
}

/// A VM larger than a cloudlet runs still converts (an operator may lower
/// the recipe's request), with a warning saying so; the cloudlet answers
/// such a recipe with a 422 before pulling anything (cloudlet's tests).
#[test]
fn a_vm_beyond_the_limits_converts_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    std::fs::write(&raw, vec![7u8; 1 << 20]).unwrap();
    let domain = testkit::domain_xml("raw", "ide");
    let start = domain.find("<vcpu").unwrap();
    let end = domain.find("</vcpu>").unwrap() + "</vcpu>".len();
    let domain = format!("{}<vcpu>128</vcpu>{}", &domain[..start], &domain[end..]);
    let package_path = dir.path().join("big.nxpk");
    testkit::package_with_domain(&package_path, &domain, Some(&raw));
    let out = dir.path().join("big.qcow2");
    let output = extract(&package_path, &out);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("Warning: the VM asks for 128 vCPUs"),
        "{text}"
    );
    assert!(text.contains("(1 to 64)"), "{text}");
    assert!(out.is_file());
}
