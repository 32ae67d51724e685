//! Writing a VMNetX package (`.nxpk`): the inverse of [`Package::open`].
//!
//! A package is a ZIP archive with the comment [`PACKAGE_COMMENT`], the
//! manifest [`MANIFEST_NAME`] first, then the domain description and the
//! disk image under the paths the manifest names. The XML members are
//! STORED; the disk is STORED (what the archive ships, and what
//! [`Package::disk`] reads in place) or DEFLATED, as asked, and may exceed
//! 4 GiB (ZIP64). [`PackageWriter`] writes members one by one (tests use it
//! to build odd packages); [`write_package`] writes a whole one.
//!
//! [`Package::open`]: super::Package::open
//! [`Package::disk`]: super::Package::disk

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use zip::CompressionMethod;
use zip::result::ZipError;
use zip::write::{SimpleFileOptions, ZipWriter};

use super::xml::manifest_xml;
use super::{MANIFEST_NAME, Manifest, PACKAGE_COMMENT};

/// How a member's bytes are kept in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// As they are (method 0).
    Stored,
    /// DEFLATE-compressed (method 8).
    Deflated,
}

impl Compression {
    fn method(self) -> CompressionMethod {
        match self {
            Compression::Stored => CompressionMethod::Stored,
            Compression::Deflated => CompressionMethod::Deflated,
        }
    }
}

/// Why a package could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Reading a member's source or writing the archive failed.
    #[error("cannot write the package: {0}")]
    Io(#[from] io::Error),
    /// The disk image to put in the package could not be opened.
    #[error("cannot open the disk image `{}`: {error}", .path.display())]
    Disk {
        /// The disk image's path.
        path: PathBuf,
        /// The operating system's error.
        error: io::Error,
    },
    /// The ZIP writer refused (a duplicate member name, for one).
    #[error("cannot write the package: {0}")]
    Zip(#[from] ZipError),
}

/// A package being written member by member.
pub struct PackageWriter<W: Write + Seek> {
    zip: ZipWriter<W>,
}

impl<W: Write + Seek> PackageWriter<W> {
    /// Starts a package on `out`, with the VMNetX archive comment.
    pub fn new(out: W) -> Result<PackageWriter<W>, WriteError> {
        let mut zip = ZipWriter::new(out);
        zip.set_raw_comment(PACKAGE_COMMENT.into())?;
        Ok(PackageWriter { zip })
    }

    /// Adds the member `name` holding `bytes`.
    pub fn add(
        &mut self,
        name: &str,
        bytes: &[u8],
        compression: Compression,
    ) -> Result<(), WriteError> {
        let options = SimpleFileOptions::default().compression_method(compression.method());
        self.zip.start_file(name, options)?;
        self.zip.write_all(bytes)?;
        Ok(())
    }

    /// Adds the member `name` with everything `source` reads, which may be
    /// more than 4 GiB; returns the number of bytes.
    pub fn add_from(
        &mut self,
        name: &str,
        source: &mut impl Read,
        compression: Compression,
    ) -> Result<u64, WriteError> {
        let options = SimpleFileOptions::default()
            .compression_method(compression.method())
            .large_file(true);
        self.zip.start_file(name, options)?;
        Ok(io::copy(source, &mut self.zip)?)
    }

    /// Adds the manifest member for `manifest`.
    pub fn add_manifest(&mut self, manifest: &Manifest) -> Result<(), WriteError> {
        self.add(
            MANIFEST_NAME,
            manifest_xml(manifest).as_bytes(),
            Compression::Stored,
        )
    }

    /// Writes the central directory; returns the output.
    pub fn finish(self) -> Result<W, WriteError> {
        Ok(self.zip.finish()?)
    }
}

/// What [`write_package`] puts in a package.
#[derive(Debug, Clone, Copy)]
pub struct PackageContents<'a> {
    /// The manifest; its paths name the members below.
    pub manifest: &'a Manifest,
    /// The `domain.xml` document, written under `manifest.domain_path`.
    pub domain_xml: &'a str,
    /// The disk image file and how to keep it, written under
    /// `manifest.disk_path`; `None` leaves the disk out (a broken package,
    /// for tests).
    pub disk: Option<(&'a Path, Compression)>,
}

/// Writes a whole package to `out`: the manifest, the domain and the disk,
/// in that order; returns `out`.
pub fn write_package<W: Write + Seek>(
    out: W,
    contents: &PackageContents<'_>,
) -> Result<W, WriteError> {
    let mut writer = PackageWriter::new(out)?;
    writer.add_manifest(contents.manifest)?;
    writer.add(
        &contents.manifest.domain_path,
        contents.domain_xml.as_bytes(),
        Compression::Stored,
    )?;
    if let Some((path, compression)) = contents.disk {
        let mut disk = File::open(path).map_err(|error| WriteError::Disk {
            path: path.to_owned(),
            error,
        })?;
        writer.add_from(&contents.manifest.disk_path, &mut disk, compression)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::SeekFrom;

    use super::*;
    use crate::bus::DiskBus;
    use crate::domain::{DiskFormat, Domain};
    use crate::package::xml::DomainSpec;
    use crate::package::{DiskMember, Package, PackageError};

    fn disk_contents(member: DiskMember) -> Vec<u8> {
        let mut bytes = Vec::new();
        match member {
            DiskMember::Stored {
                mut file,
                offset,
                len,
            } => {
                file.seek(SeekFrom::Start(offset)).unwrap();
                file.take(len).read_to_end(&mut bytes).unwrap();
            }
            DiskMember::Deflated { mut reader, .. } => {
                reader.read_to_end(&mut bytes).unwrap();
            }
        }
        bytes
    }

    #[test]
    fn what_the_writer_writes_the_reader_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.raw");
        let disk_bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&disk, &disk_bytes).unwrap();
        let manifest = Manifest {
            name: "Windows 3.1 & friends".to_owned(),
            domain_path: "domain.xml".to_owned(),
            disk_path: "disk.img".to_owned(),
            memory_path: None,
        };
        let spec = DomainSpec {
            name: "machine".to_owned(),
            vcpus: 2,
            memory_mib: 256,
            arch: "i686".to_owned(),
            machine: "pc-1.0".to_owned(),
            disk_format: DiskFormat::Raw,
            disk_bus: DiskBus::Sata,
            network: true,
        };
        let domain_xml = spec.xml();
        for compression in [Compression::Stored, Compression::Deflated] {
            let path = dir.path().join("vm.nxpk");
            let contents = PackageContents {
                manifest: &manifest,
                domain_xml: &domain_xml,
                disk: Some((&disk, compression)),
            };
            write_package(File::create(&path).unwrap(), &contents).unwrap();
            let package = Package::open(&path).unwrap();
            assert_eq!(package.comment(), PACKAGE_COMMENT);
            assert_eq!(package.manifest(), &manifest);
            assert_eq!(package.domain(), &Domain::parse(&domain_xml).unwrap());
            let member = package.disk().unwrap();
            assert_eq!(
                matches!(member, DiskMember::Stored { .. }),
                compression == Compression::Stored
            );
            assert_eq!(member.len(), disk_bytes.len() as u64);
            assert_eq!(disk_contents(member), disk_bytes);
        }
    }

    #[test]
    fn a_package_without_its_disk_is_written_and_refused_by_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.nxpk");
        let manifest = Manifest {
            name: "VM".to_owned(),
            domain_path: "domain.xml".to_owned(),
            disk_path: "disk.img".to_owned(),
            memory_path: None,
        };
        let contents = PackageContents {
            manifest: &manifest,
            domain_xml: "<domain/>",
            disk: None,
        };
        write_package(File::create(&path).unwrap(), &contents).unwrap();
        assert!(matches!(
            Package::open(&path),
            Err(PackageError::MissingMember {
                element: "disk",
                ..
            })
        ));
        let missing = PackageContents {
            disk: Some((&dir.path().join("nowhere"), Compression::Stored)),
            ..contents
        };
        let error = write_package(std::io::Cursor::new(Vec::new()), &missing).err();
        assert!(matches!(error, Some(WriteError::Disk { .. })), "{error:?}");
    }

    #[test]
    fn members_are_written_one_by_one_and_names_stay_unique() {
        let mut writer = PackageWriter::new(std::io::Cursor::new(Vec::new())).unwrap();
        writer
            .add("notes.txt", b"hello", Compression::Deflated)
            .unwrap();
        assert!(matches!(
            writer.add("notes.txt", b"again", Compression::Stored),
            Err(WriteError::Zip(_))
        ));
    }
}
