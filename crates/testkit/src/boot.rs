//! Bootable disks for the tests that watch a guest's screen: a FAT volume
//! with SYSLINUX (Debian's `dosfstools`, `mtools`, `syslinux`) that shows a
//! message under a blue title bar and waits at its prompt, optionally
//! followed by incompressible bytes, so the disk is as large as an archive
//! VM's while its boot reads only the first megabytes.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{XorShift, run};

/// The title bar's colour as QEMU's VNC server sends it: VGA blue, whose
/// 6-bit DAC value 42 becomes 168 (not the 170 of VGA charts).
pub const TITLE_RGB: [u8; 3] = [0, 0, 168];

/// SYSLINUX's configuration: show the message, wait at the prompt.
const SYSLINUX_CFG: &str = "DEFAULT main\r\nPROMPT 1\r\nTIMEOUT 0\r\nDISPLAY message.txt\r\n\
                            LABEL main\r\n  LOCALBOOT 0\r\n";

/// A raw disk at `dir/boot.img`: a 48 MiB FAT volume booting SYSLINUX,
/// which shows `title` white on blue, then `padding` pseudo-random bytes
/// (from `seed`) after the volume. A 32 MiB file of random bytes is copied
/// onto the volume first, so SYSLINUX's own files lie 32 MiB into the disk:
/// a boot that reads them cannot be served by the image's first megabytes.
pub fn syslinux_disk(dir: &Path, title: &str, padding: u64, seed: u64) -> PathBuf {
    let image = dir.join("boot.img");
    let config = dir.join("syslinux.cfg");
    let message = dir.join("message.txt");
    let filler = dir.join("filler.bin");
    let mut random = XorShift::new(seed);
    let mut filling = vec![0u8; 32 << 20];
    random.fill(&mut filling);
    std::fs::write(&filler, &filling).unwrap();
    drop(filling);
    std::fs::File::create(&image)
        .unwrap()
        .set_len(48 << 20)
        .unwrap();
    std::fs::write(&config, SYSLINUX_CFG).unwrap();
    // Ctrl-L clears the screen; Ctrl-O and two hex digits set the colours.
    std::fs::write(&message, format!("\x0c\r\n\x0f1f  {title}  \x0f07\r\n\r\n")).unwrap();
    let sbin = "/usr/sbin/mkfs.vfat";
    let mkfs = if Path::new(sbin).exists() {
        sbin
    } else {
        "mkfs.vfat"
    };
    run(mkfs, &["-n", "OLIVETEST", image.to_str().unwrap()]);
    let status = std::process::Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(&image)
        .args([&filler, &config, &message])
        .arg("::/")
        .status()
        .expect("mcopy: install the Debian package mtools");
    assert!(status.success(), "mcopy failed");
    run("syslinux", &["--install", image.to_str().unwrap()]);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&image)
        .unwrap();
    let mut piece = vec![0u8; 8 << 20];
    let mut left = padding;
    while left > 0 {
        let length = left.min(piece.len() as u64) as usize;
        random.fill(&mut piece[..length]);
        file.write_all(&piece[..length]).unwrap();
        left -= length as u64;
    }
    image
}
