//! Opening a VMNetX package (`.nxpk`) without copying its disk.
//!
//! A package is a ZIP archive (ZIP64 when the disk exceeds 4 GiB) holding a
//! manifest `vmnetx-package.xml`, a libvirt `domain.xml`, a disk image and
//! optionally a memory image. The original Python tool extracted the disk to
//! a temporary file before converting it; a disk of many GiB was then copied
//! several times. Packages store their members uncompressed (STORED), so the
//! disk is simply a byte range of the package file: [`Package::disk`] returns
//! that range ([`DiskMember::Stored`]) and the converter reads it in place.
//! A DEFLATE member cannot be read in place and is streamed instead
//! ([`DiskMember::Deflated`]), with its size and CRC-32 checked at the end.
//!
//! The package comes from the network and is untrusted. Only the central
//! directory is parsed by the `zip` crate; every member we use is then
//! checked against its local header (same name, same method, not
//! encrypted, data inside the file), XML members are read with a size bound
//! and parsed without DTDs (see [`crate::domain`]), and the paths named by
//! the manifest must be plain relative member names. Nothing here panics on
//! any input: every defect is a [`PackageError`] naming the member.
//!
//! Writing a package is [`write`]'s, with the manifest and a minimal
//! `domain.xml` made by [`xml`].

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use zip::CompressionMethod;
use zip::ZipArchive;
use zip::result::ZipError;

use crate::domain::{Domain, DomainError, parse_xml};
use crate::shown::Shown;

pub mod write;
pub mod xml;

/// The XML namespace of the package manifest.
pub const NAMESPACE: &str = "http://olivearchive.org/xmlns/vmnetx/package";

/// The name of the manifest member.
pub const MANIFEST_NAME: &str = "vmnetx-package.xml";

/// The archive comment VMNetX writes (not required when reading).
pub const PACKAGE_COMMENT: &[u8] = b"VMNetX package";

/// The largest XML member (manifest, domain) read into memory: 1 MiB.
pub const MAX_XML_SIZE: u64 = 1 << 20;

/// Signature of a ZIP local file header.
const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;

/// Size of the fixed part of a ZIP local file header.
const LOCAL_HEADER_LEN: usize = 30;

/// Bit 0 of the general-purpose flags: the member is encrypted.
const FLAG_ENCRYPTED: u16 = 1;

/// ZIP method number of STORED.
const METHOD_STORED: u16 = 0;

/// ZIP method number of DEFLATE.
const METHOD_DEFLATED: u16 = 8;

/// Buffer size for reading compressed member data.
const READ_BUFFER: usize = 256 * 1024;

/// Why a package could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The package file could not be opened.
    #[error("cannot open package `{}`: {error}", .path.display())]
    Open {
        /// The path given to [`Package::open`].
        path: PathBuf,
        /// The operating system's error.
        error: io::Error,
    },
    /// Reading the package file failed.
    #[error("I/O error reading package: {0}")]
    Io(io::Error),
    /// The file is not a (readable) ZIP archive.
    #[error("not a VMNetX package: not a ZIP archive ({0})")]
    NotZip(String),
    /// The central directory lists some name more than once, so which
    /// member is meant is ambiguous.
    #[error("not a VMNetX package: the ZIP archive lists a member name more than once")]
    DuplicateMembers,
    /// There is no `vmnetx-package.xml`.
    #[error("not a VMNetX package: no member `{MANIFEST_NAME}`")]
    MissingManifest,
    /// A member named by the manifest is not in the archive.
    #[error("member `{}` (the manifest's <{element}>) is missing from the package", Shown(.name))]
    MissingMember {
        /// The manifest element naming it (`domain`, `disk`, `memory`).
        element: &'static str,
        /// The member name.
        name: String,
    },
    /// A member is a directory, not a file.
    #[error("member `{}` is a directory", Shown(.name))]
    NotAFile {
        /// The member name.
        name: String,
    },
    /// A member is encrypted.
    #[error("member `{}` is encrypted", Shown(.name))]
    Encrypted {
        /// The member name.
        name: String,
    },
    /// A member uses a compression method other than STORED or DEFLATE.
    #[error(
        "member `{}` uses unsupported compression method {method} (only STORED and DEFLATE are supported)",
        Shown(.name)
    )]
    UnsupportedCompression {
        /// The member name.
        name: String,
        /// The ZIP compression method (number and name).
        method: String,
    },
    /// A member's headers or data are inconsistent or damaged.
    #[error("member `{}` is corrupt: {reason}", Shown(.name))]
    Corrupt {
        /// The member name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// An XML member is larger than [`MAX_XML_SIZE`].
    #[error("member `{}` is too large ({size} bytes, at most {limit})", Shown(.name))]
    TooLarge {
        /// The member name.
        name: String,
        /// Its declared uncompressed size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An XML member is not UTF-8.
    #[error("member `{}` is not UTF-8 text", Shown(.name))]
    NotUtf8 {
        /// The member name.
        name: String,
    },
    /// An XML member is not well-formed (or has a DTD, or too many nodes).
    #[error("member `{}` is not well-formed XML: {error}", Shown(.name))]
    Xml {
        /// The member name.
        name: String,
        /// The parser's error.
        error: roxmltree::Error,
    },
    /// The manifest is well-formed XML but not a valid manifest.
    #[error("invalid manifest `{MANIFEST_NAME}`: {0}")]
    Manifest(String),
    /// The manifest names a member with a path that is not a plain relative
    /// member name.
    #[error(
        "invalid manifest `{MANIFEST_NAME}`: <{element}> path `{}` {reason}",
        Shown(.path)
    )]
    UnsafePath {
        /// The manifest element (`domain`, `disk`, `memory`).
        element: &'static str,
        /// The path as written.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The domain description is invalid.
    #[error("invalid domain description `{}`: {error}", Shown(.name))]
    Domain {
        /// The member name.
        name: String,
        /// What is wrong with it.
        error: DomainError,
    },
}

impl From<io::Error> for PackageError {
    fn from(error: io::Error) -> Self {
        PackageError::Io(error)
    }
}

/// The contents of `vmnetx-package.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The VM name (`/image/@name`); may be empty.
    pub name: String,
    /// The member holding the libvirt domain XML (`/image/domain/@path`).
    pub domain_path: String,
    /// The member holding the disk image (`/image/disk/@path`).
    pub disk_path: String,
    /// The member holding the saved memory image, if any
    /// (`/image/memory/@path`).
    pub memory_path: Option<String>,
}

impl Manifest {
    /// Parses and validates a manifest document.
    ///
    /// The root must be `<image>` in [`NAMESPACE`] with a `name` attribute,
    /// and have `<domain>` and `<disk>` children (and at most one
    /// `<memory>`), each with a `path` that is a plain relative member name:
    /// not empty, not absolute, no `..` component, no backslash, no NUL.
    /// Whether the members exist is checked by [`Package::open`].
    pub fn parse(xml: &str) -> Result<Manifest, PackageError> {
        let doc = parse_xml(xml).map_err(|error| PackageError::Xml {
            name: MANIFEST_NAME.to_owned(),
            error,
        })?;
        let root = doc.root_element();
        if root.tag_name().name() != "image" || root.tag_name().namespace() != Some(NAMESPACE) {
            let found = match root.tag_name().namespace() {
                Some(ns) => format!("{{{ns}}}{}", root.tag_name().name()),
                None => format!("{} (no namespace)", root.tag_name().name()),
            };
            return Err(PackageError::Manifest(format!(
                "root element is <{found}>, expected <image> in namespace {NAMESPACE}"
            )));
        }
        let name = root
            .attribute("name")
            .ok_or_else(|| PackageError::Manifest("<image> has no `name` attribute".to_owned()))?
            .to_owned();
        let domain_path = member_path(root, "domain")?
            .ok_or_else(|| PackageError::Manifest("no <domain> element".to_owned()))?;
        let disk_path = member_path(root, "disk")?
            .ok_or_else(|| PackageError::Manifest("no <disk> element".to_owned()))?;
        let memory_path = member_path(root, "memory")?;
        Ok(Manifest {
            name,
            domain_path,
            disk_path,
            memory_path,
        })
    }
}

/// The validated `path` of the single child `element` of the manifest root.
fn member_path(
    root: roxmltree::Node<'_, '_>,
    element: &'static str,
) -> Result<Option<String>, PackageError> {
    let mut found = root.children().filter(|c| {
        c.is_element()
            && c.tag_name().name() == element
            && c.tag_name().namespace() == Some(NAMESPACE)
    });
    let Some(node) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(PackageError::Manifest(format!(
            "more than one <{element}> element"
        )));
    }
    let path = node
        .attribute("path")
        .ok_or_else(|| PackageError::Manifest(format!("<{element}> has no `path` attribute")))?;
    let refuse = |reason| PackageError::UnsafePath {
        element,
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(refuse("is empty"));
    }
    if path.contains('\0') {
        return Err(refuse("contains a NUL character"));
    }
    if path.contains('\\') {
        return Err(refuse("contains a backslash"));
    }
    if path.starts_with('/') {
        return Err(refuse("is absolute"));
    }
    if path.split('/').any(|component| component == "..") {
        return Err(refuse("contains a `..` component"));
    }
    Ok(Some(path.to_owned()))
}

/// How a member's data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Stored,
    Deflated,
}

/// Where a member's data is and how to check it.
#[derive(Debug, Clone)]
struct MemberInfo {
    /// The member name.
    name: String,
    /// Storage method.
    method: Method,
    /// Offset of the (compressed) data in the package file.
    data_start: u64,
    /// Length of the (compressed) data.
    compressed_size: u64,
    /// Length of the uncompressed data.
    size: u64,
    /// CRC-32 of the uncompressed data.
    crc32: u32,
}

impl MemberInfo {
    /// The offset just past the member's (compressed) data.
    fn data_end(&self) -> u64 {
        // Checked when the member was located.
        self.data_start.saturating_add(self.compressed_size)
    }
}

/// Where the disk image of a package is, as returned by [`Package::disk`].
pub enum DiskMember {
    /// Stored: the disk is the byte range `[offset, offset + len)` of the
    /// package file: read it in place, no copy.
    ///
    /// `file` is a duplicate of the package's handle: it shares its cursor
    /// with every other handle returned for this package. It is positioned
    /// at `offset` on return; prefer positional reads (`read_at`) if several
    /// readers may use the package at once. The CRC-32 of the range is not
    /// checked (that would mean reading the whole disk up front).
    Stored {
        /// The package file.
        file: File,
        /// Offset of the first byte of the disk in `file`.
        offset: u64,
        /// Length of the disk in bytes.
        len: u64,
    },
    /// Deflated: a sequential reader of the inflated bytes plus the declared
    /// uncompressed length.
    ///
    /// The reader fails with an [`io::ErrorKind::InvalidData`] error (it does
    /// not silently end) if the data is corrupt, if the inflated size
    /// differs from `len`, or if the CRC-32 does not match.
    Deflated {
        /// The inflated disk bytes.
        reader: Box<dyn Read + Send>,
        /// The declared uncompressed length in bytes.
        len: u64,
    },
}

impl DiskMember {
    /// The length of the disk image in bytes.
    pub fn len(&self) -> u64 {
        match self {
            DiskMember::Stored { len, .. } | DiskMember::Deflated { len, .. } => *len,
        }
    }

    /// Whether the disk image is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for DiskMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskMember::Stored { file, offset, len } => f
                .debug_struct("Stored")
                .field("file", file)
                .field("offset", offset)
                .field("len", len)
                .finish(),
            DiskMember::Deflated { len, .. } => f
                .debug_struct("Deflated")
                .field("len", len)
                .finish_non_exhaustive(),
        }
    }
}

/// An open VMNetX package: the open file and its parsed manifest and domain.
#[derive(Debug)]
pub struct Package {
    /// The package file (only read with positional reads).
    file: File,
    /// The archive comment.
    comment: Vec<u8>,
    /// The parsed manifest.
    manifest: Manifest,
    /// The parsed domain description.
    domain: Domain,
    /// Where the disk image is.
    disk: MemberInfo,
}

impl Package {
    /// Opens a package, reads and validates its manifest, and reads and
    /// parses its domain description.
    ///
    /// The disk (and memory, if any) member must exist and be a readable
    /// STORED or DEFLATE member whose data lies inside the file; its
    /// contents are not read.
    pub fn open(path: &Path) -> Result<Package, PackageError> {
        let file = File::open(path).map_err(|error| PackageError::Open {
            path: path.to_owned(),
            error,
        })?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(PackageError::Open {
                path: path.to_owned(),
                error: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            });
        }
        let file_len = metadata.len();
        if file_len == 0 {
            return Err(PackageError::NotZip("the file is empty".to_owned()));
        }
        let archive =
            ZipArchive::new(BufReader::new(file.try_clone()?)).map_err(|error| match error {
                ZipError::Io(e) if e.kind() != io::ErrorKind::UnexpectedEof => PackageError::Io(e),
                other => PackageError::NotZip(other.to_string()),
            })?;
        if archive.has_duplicate_names() {
            return Err(PackageError::DuplicateMembers);
        }
        let data_limit = file_len.min(archive.central_directory_start());

        let manifest_info = locate(&archive, &file, data_limit, MANIFEST_NAME)?
            .ok_or(PackageError::MissingManifest)?;
        let manifest = Manifest::parse(&read_xml(&file, &manifest_info)?)?;

        let domain_info =
            locate_required(&archive, &file, data_limit, "domain", &manifest.domain_path)?;
        let domain = Domain::parse(&read_xml(&file, &domain_info)?).map_err(|error| {
            PackageError::Domain {
                name: domain_info.name.clone(),
                error,
            }
        })?;

        let disk = locate_required(&archive, &file, data_limit, "disk", &manifest.disk_path)?;
        if let Some(memory) = &manifest.memory_path {
            locate_required(&archive, &file, data_limit, "memory", memory)?;
        }

        // Only the central directory was read through the archive; its
        // handle is dropped here, ours is kept for positional reads.
        let comment = archive.comment().to_vec();
        Ok(Package {
            file,
            comment,
            manifest,
            domain,
            disk,
        })
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The parsed domain description.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The archive comment (normally [`PACKAGE_COMMENT`]; not required).
    pub fn comment(&self) -> &[u8] {
        &self.comment
    }

    /// Where the disk image is: a byte range of the package file when it is
    /// STORED, a checked inflating stream when it is DEFLATE-compressed.
    ///
    /// Fails if the package file has shrunk since it was opened or cannot be
    /// duplicated.
    pub fn disk(&self) -> Result<DiskMember, PackageError> {
        let info = &self.disk;
        let file_len = self.file.metadata()?.len();
        if info.data_end() > file_len {
            return Err(PackageError::Corrupt {
                name: info.name.clone(),
                reason: format!(
                    "data ends at byte {} but the package file now has {file_len} bytes",
                    info.data_end()
                ),
            });
        }
        let mut file = self.file.try_clone()?;
        match info.method {
            Method::Stored => {
                file.seek(SeekFrom::Start(info.data_start))?;
                Ok(DiskMember::Stored {
                    file,
                    offset: info.data_start,
                    len: info.size,
                })
            }
            Method::Deflated => Ok(DiskMember::Deflated {
                reader: Box::new(MemberReader::new(file, info)),
                len: info.size,
            }),
        }
    }
}

/// [`locate`] for a member the manifest names: absent is an error.
fn locate_required(
    archive: &ZipArchive<BufReader<File>>,
    file: &File,
    data_limit: u64,
    element: &'static str,
    name: &str,
) -> Result<MemberInfo, PackageError> {
    locate(archive, file, data_limit, name)?.ok_or_else(|| PackageError::MissingMember {
        element,
        name: name.to_owned(),
    })
}

/// Finds member `name` and checks that it can be read: a file, not
/// encrypted, STORED or DEFLATE, its local header agreeing with the central
/// directory, its data ending before `data_limit`. `None` if absent.
fn locate(
    archive: &ZipArchive<BufReader<File>>,
    file: &File,
    data_limit: u64,
    name: &str,
) -> Result<Option<MemberInfo>, PackageError> {
    let Some(index) = archive.index_for_name(name) else {
        return Ok(None);
    };
    let corrupt = |reason: String| PackageError::Corrupt {
        name: name.to_owned(),
        reason,
    };
    let entry = archive
        .by_index_data(index)
        .map_err(|e| corrupt(e.to_string()))?;
    if entry.is_dir() {
        return Err(PackageError::NotAFile {
            name: name.to_owned(),
        });
    }
    if entry.encrypted() {
        return Err(PackageError::Encrypted {
            name: name.to_owned(),
        });
    }

    // The local header: the data follows it, and it must describe the same
    // member as the central directory.
    let header_start = entry.header_start();
    let mut header = [0u8; LOCAL_HEADER_LEN];
    read_exact_at(file, &mut header, header_start).map_err(|e| {
        corrupt(format!(
            "cannot read its local header at byte {header_start}: {e}"
        ))
    })?;
    let u16_at = |i: usize| u16::from_le_bytes([header[i], header[i + 1]]);
    let signature = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    if signature != LOCAL_HEADER_SIGNATURE {
        return Err(corrupt(format!(
            "no local header signature at byte {header_start}"
        )));
    }
    let local_flags = u16_at(6);
    let local_method = u16_at(8);
    let name_len = u16_at(26);
    let extra_len = u16_at(28);
    let mut local_name = vec![0u8; usize::from(name_len)];
    let name_start = header_start.saturating_add(LOCAL_HEADER_LEN as u64);
    read_exact_at(file, &mut local_name, name_start)
        .map_err(|e| corrupt(format!("cannot read its local header name: {e}")))?;
    if local_name != entry.name_raw() {
        return Err(corrupt(format!(
            "its local header names `{}`",
            Shown(&String::from_utf8_lossy(&local_name))
        )));
    }
    if local_flags & FLAG_ENCRYPTED != 0 {
        return Err(PackageError::Encrypted {
            name: name.to_owned(),
        });
    }
    let method = match entry.compression() {
        CompressionMethod::Stored => Method::Stored,
        CompressionMethod::Deflated => Method::Deflated,
        _ => {
            return Err(PackageError::UnsupportedCompression {
                name: name.to_owned(),
                method: describe_method(entry.compression(), local_method),
            });
        }
    };
    let expected_method = match method {
        Method::Stored => METHOD_STORED,
        Method::Deflated => METHOD_DEFLATED,
    };
    if local_method != expected_method {
        return Err(corrupt(format!(
            "its local header says compression method {local_method}, the central directory {expected_method}"
        )));
    }

    let compressed_size = entry.compressed_size();
    let size = entry.size();
    if method == Method::Stored && compressed_size != size {
        return Err(corrupt(format!(
            "stored member with compressed size {compressed_size} but size {size}"
        )));
    }
    let data_start = name_start
        .checked_add(u64::from(name_len) + u64::from(extra_len))
        .ok_or_else(|| corrupt("data offset overflows".to_owned()))?;
    let data_end = data_start
        .checked_add(compressed_size)
        .ok_or_else(|| corrupt("data end overflows".to_owned()))?;
    if data_end > data_limit {
        return Err(corrupt(format!(
            "its data (bytes {data_start} to {data_end}) runs past the end of the member area (byte {data_limit}); the package is truncated"
        )));
    }
    Ok(Some(MemberInfo {
        name: name.to_owned(),
        method,
        data_start,
        compressed_size,
        size,
        crc32: entry.crc32(),
    }))
}

/// Describes an unsupported method for messages: its number (from the
/// local header, as the `zip` crate does not expose the central one) and
/// its name, or the central directory's name alone if the headers disagree.
fn describe_method(central: CompressionMethod, local_method: u16) -> String {
    let central_name = central.to_string();
    let local_name = CompressionMethod::name_from_u16(local_method);
    if central_name == local_name {
        format!("{local_method} ({local_name})")
    } else {
        central_name
    }
}

/// Reads a whole XML member (at most [`MAX_XML_SIZE`] bytes) as UTF-8.
fn read_xml(file: &File, info: &MemberInfo) -> Result<String, PackageError> {
    if info.size > MAX_XML_SIZE {
        return Err(PackageError::TooLarge {
            name: info.name.clone(),
            size: info.size,
            limit: MAX_XML_SIZE,
        });
    }
    let mut bytes = Vec::new();
    let mut reader = MemberReader::new(file.try_clone()?, info);
    if let Err(e) = (&mut reader).take(MAX_XML_SIZE).read_to_end(&mut bytes) {
        return Err(PackageError::Corrupt {
            name: info.name.clone(),
            reason: reader
                .failed
                .map_or_else(|| e.to_string(), |(_, reason)| reason),
        });
    }
    String::from_utf8(bytes).map_err(|_| PackageError::NotUtf8 {
        name: info.name.clone(),
    })
}

/// Reads at `offset` without moving any cursor that matters.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
    #[cfg(not(any(unix, windows)))]
    {
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        file.read(buf)
    }
}

/// Fills `buf` from `offset`, failing with `UnexpectedEof` at end of file.
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unexpected end of file",
                ));
            }
            Ok(n) => {
                buf = buf.get_mut(n..).unwrap_or_default();
                offset = offset.saturating_add(n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The byte range `[pos, end)` of a file, read with positional reads.
struct RangeReader {
    file: File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.end.saturating_sub(self.pos);
        let want = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let Some(buf) = buf.get_mut(..want) else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let n = read_at(&self.file, buf, self.pos)?;
        self.pos = self.pos.saturating_add(n as u64);
        Ok(n)
    }
}

/// The decoder of a member's data.
enum Decoder {
    Stored(RangeReader),
    Deflated(Box<flate2::bufread::DeflateDecoder<BufReader<RangeReader>>>),
}

/// A member's uncompressed bytes, checked against the declared size and
/// CRC-32: any mismatch is an `InvalidData` error, never a silent end.
struct MemberReader {
    name: String,
    decoder: Decoder,
    crc: flate2::Crc,
    produced: u64,
    expected_len: u64,
    expected_crc: u32,
    /// The stream ended and was verified.
    finished: bool,
    /// The failure already reported (kind and reason), repeated on later
    /// reads.
    failed: Option<(io::ErrorKind, String)>,
}

impl MemberReader {
    fn new(file: File, info: &MemberInfo) -> MemberReader {
        let range = RangeReader {
            file,
            pos: info.data_start,
            end: info.data_end(),
        };
        let decoder = match info.method {
            Method::Stored => Decoder::Stored(range),
            Method::Deflated => Decoder::Deflated(Box::new(flate2::bufread::DeflateDecoder::new(
                BufReader::with_capacity(READ_BUFFER, range),
            ))),
        };
        MemberReader {
            name: info.name.clone(),
            decoder,
            crc: flate2::Crc::new(),
            produced: 0,
            expected_len: info.size,
            expected_crc: info.crc32,
            finished: false,
            failed: None,
        }
    }

    /// Records a failure (`reason` does not name the member) and returns it
    /// as an I/O error naming the member.
    fn fail(&mut self, kind: io::ErrorKind, reason: String) -> io::Error {
        let error = self.error(kind, &reason);
        self.failed = Some((kind, reason));
        error
    }

    fn error(&self, kind: io::ErrorKind, reason: &str) -> io::Error {
        io::Error::new(kind, format!("member `{}`: {reason}", Shown(&self.name)))
    }
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, reason)) = &self.failed {
            return Err(self.error(*kind, reason));
        }
        if self.finished || buf.is_empty() {
            return Ok(0);
        }
        let result = match &mut self.decoder {
            Decoder::Stored(range) => range.read(buf),
            Decoder::Deflated(inflate) => inflate.read(buf),
        };
        let n = match result {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let kind = match self.decoder {
                    Decoder::Deflated(_) if e.kind() == io::ErrorKind::InvalidInput => {
                        io::ErrorKind::InvalidData
                    }
                    _ => e.kind(),
                };
                return Err(self.fail(kind, format!("cannot read data: {e}")));
            }
        };
        if n == 0 {
            if self.produced != self.expected_len {
                let message = format!(
                    "data ends after {} bytes, but {} were declared",
                    self.produced, self.expected_len
                );
                return Err(self.fail(io::ErrorKind::InvalidData, message));
            }
            let crc = self.crc.sum();
            if crc != self.expected_crc {
                let message = format!(
                    "CRC-32 mismatch: data has {crc:08x}, header says {:08x}",
                    self.expected_crc
                );
                return Err(self.fail(io::ErrorKind::InvalidData, message));
            }
            self.finished = true;
            return Ok(0);
        }
        let data = buf.get(..n).unwrap_or_default();
        self.produced = self.produced.saturating_add(n as u64);
        if self.produced > self.expected_len {
            let message = format!(
                "data is longer than the {} bytes declared",
                self.expected_len
            );
            return Err(self.fail(io::ErrorKind::InvalidData, message));
        }
        self.crc.update(data);
        Ok(n)
    }
}
