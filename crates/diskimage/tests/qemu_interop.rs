//! Images written by this crate, checked by QEMU's own tools, and images
//! written by QEMU, read by this crate.
#![allow(clippy::unwrap_used)]

mod common;

use common::convert;
use diskimage::{Compression, InputFormat};
use testkit::{assert_same_disk as assert_qemu_accepts, ext4_disk, run};

#[test]
fn raw_disk_to_deflate_and_zstd_qcow2() {
    let dir = tempfile::tempdir().unwrap();
    let raw = ext4_disk(dir.path(), "96M");
    for compression in [Compression::DEFLATE, Compression::ZSTD] {
        let out = dir.path().join("out.qcow2");
        let stats = convert(&raw, Some(InputFormat::Raw), &out, compression, 2).unwrap();
        assert_eq!(stats.virtual_size, 96 << 20);
        assert!(stats.compressed_clusters > 0 && stats.zero_clusters > 0);
        assert_qemu_accepts(&out, &raw);
        let info = run(
            "qemu-img",
            &["info", "--output=json", out.to_str().unwrap()],
        );
        let expected = if compression == Compression::ZSTD {
            "zstd"
        } else {
            "zlib"
        };
        assert!(
            info.contains(&format!("\"compression-type\": \"{expected}\"")),
            "{info}"
        );
        assert!(
            std::fs::metadata(&out).unwrap().len() < std::fs::metadata(&raw).unwrap().len() / 2
        );
    }
}

#[test]
fn qemu_made_qcow2_inputs_of_every_flavour() {
    let dir = tempfile::tempdir().unwrap();
    let raw = ext4_disk(dir.path(), "40M");
    let raw_path = raw.to_str().unwrap();
    let flavours: &[&[&str]] = &[
        &["-c"],                                // compressed, zlib (the archive's usual)
        &["-c", "-o", "compression_type=zstd"], // compressed, zstd
        &[],                                    // plain clusters
        &["-o", "compat=0.10"],                 // version 2
        &["-c", "-o", "cluster_size=4096"],     // small clusters
        &["-c", "-o", "cluster_size=2M"],       // large clusters
        &["-o", "cluster_size=512"],            // smallest clusters
    ];
    for flavour in flavours {
        let input = dir.path().join("in.qcow2");
        let mut args = vec!["convert", "-O", "qcow2"];
        args.extend_from_slice(flavour);
        args.extend_from_slice(&[raw_path, input.to_str().unwrap()]);
        run("qemu-img", &args);
        let out = dir.path().join("out.qcow2");
        let stats = convert(&input, None, &out, Compression::DEFLATE, 2)
            .unwrap_or_else(|e| panic!("{flavour:?}: {e}"));
        assert_eq!(stats.virtual_size, 40 << 20, "{flavour:?}");
        assert_qemu_accepts(&out, &raw);
    }
}

#[test]
fn odd_sizes_and_incompressible_data() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("odd.raw");
    // 3 MiB + 5 sectors: random (incompressible), zeros, text, then a tail
    // that ends in the middle of a cluster.
    let mut data = testkit::XorShift::new(0x2545_f491_4f6c_dd1d).bytes(1 << 20);
    data.extend(std::iter::repeat_n(0u8, 1 << 20));
    data.extend(b"olive archive ".iter().cycle().take((1 << 20) + 5 * 512));
    std::fs::write(&raw, &data).unwrap();
    let out = dir.path().join("out.qcow2");
    let stats = convert(&raw, Some(InputFormat::Raw), &out, Compression::DEFLATE, 3).unwrap();
    assert_eq!(
        stats.uncompressed_clusters, 16,
        "random data stays uncompressed"
    );
    assert_eq!(stats.zero_clusters, 16);
    assert_qemu_accepts(&out, &raw);
}

#[test]
fn the_same_input_gives_the_same_bytes_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let raw = ext4_disk(dir.path(), "48M");
    let mut outputs = Vec::new();
    for threads in [1, 2, 5] {
        let out = dir.path().join(format!("out{threads}.qcow2"));
        convert(
            &raw,
            Some(InputFormat::Raw),
            &out,
            Compression::ZSTD,
            threads,
        )
        .unwrap();
        outputs.push(std::fs::read(&out).unwrap());
    }
    assert!(outputs.windows(2).all(|pair| pair[0] == pair[1]));
}

#[test]
fn empty_and_tiny_disks() {
    let dir = tempfile::tempdir().unwrap();
    for size in [0usize, 512, 4096] {
        let raw = dir.path().join("tiny.raw");
        std::fs::write(&raw, vec![7u8; size]).unwrap();
        let out = dir.path().join("tiny.qcow2");
        convert(&raw, Some(InputFormat::Raw), &out, Compression::DEFLATE, 1).unwrap();
        run("qemu-img", &["check", out.to_str().unwrap()]);
        if size > 0 {
            assert_qemu_accepts(&out, &raw);
        }
    }
}

#[test]
fn small_clusters_exercise_streamed_l2_tables_and_refcount_blocks() {
    // With 4 KiB clusters an L2 table maps 2 MiB of guest and a refcount
    // block counts 8 MiB of image, so a 40 MiB disk writes many of each in
    // the middle of the data stream.
    let dir = tempfile::tempdir().unwrap();
    let raw = ext4_disk(dir.path(), "40M");
    // Incompressible data in the last 12 MiB makes the image large enough.
    let of = format!("of={}", raw.display());
    run(
        "dd",
        &[
            "if=/dev/urandom",
            &of,
            "bs=1M",
            "seek=28",
            "count=12",
            "conv=notrunc",
            "status=none",
        ],
    );
    let source =
        diskimage::Source::RandomAccess(Box::new(diskimage::FileRange::open(&raw).unwrap()));
    let reader = diskimage::DiskReader::open(source, Some(InputFormat::Raw)).unwrap();
    let out_path = dir.path().join("small.qcow2");
    let out = std::fs::File::create(&out_path).unwrap();
    let options = diskimage::ConvertOptions {
        cluster_bits: 12,
        threads: 2,
        ..Default::default()
    };
    diskimage::convert(reader, out, &options, &mut |_| {}).unwrap();
    assert!(
        std::fs::metadata(&out_path).unwrap().len() > 8 << 20,
        "needs several refcount blocks"
    );
    assert_qemu_accepts(&out_path, &raw);
}
