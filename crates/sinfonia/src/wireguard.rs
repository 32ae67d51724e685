//! The WireGuard and resolver configuration of a deployment, rendered as the
//! original `sinfonia-tier3` renders it (its `wireguard-tools` package).
//!
//! - [`wg_conf`]: the `wg.conf` that `--config-debug` writes, in `wg`
//!   (`wg setconf`) format: `PrivateKey` and one `[Peer]`, no `Address` or
//!   `DNS` (the original puts those in the network namespace instead);
//! - [`wg_quick_conf`]: the same plus the wg-quick extensions (`Address`,
//!   `DNS` — servers, then search domains —, and the WireGuard Android
//!   app's `IncludedApplications`), which `--qrcode` encodes;
//! - [`resolv_conf`]: the `resolv.conf` (`nameserver`s, `search`,
//!   `options ndots:5`);
//! - [`qrcode()`]: a config as a QR code for a terminal, in the original's two
//!   styles.

use std::fmt::Write as _;

use ::qrcode::bits::Bits;
use ::qrcode::canvas::{Canvas, MaskPattern};
use ::qrcode::ec::construct_codewords;
use ::qrcode::{EcLevel, Version};

use crate::deploy::TunnelConfig;
use crate::keys::{KeyPair, encode_key};

/// The persistent keep-alive of the client's peer, in seconds: in the
/// configs rendered here and in the user-space tunnel's client alike.
pub const PERSISTENT_KEEPALIVE: u16 = 30;

/// The `ndots` option of the resolver configuration, which the user-space
/// tunnel's resolver follows too.
pub const NDOTS: u8 = 5;

/// The `wg.conf` the original's `--config-debug` writes (`wg` format).
pub fn wg_conf(keys: &KeyPair, tunnel: &TunnelConfig) -> String {
    render(keys, tunnel, None)
}

/// The wg-quick configuration, with `IncludedApplications` when
/// `included_applications` is not empty (the WireGuard Android app then
/// tunnels only those apps).
pub fn wg_quick_conf(
    keys: &KeyPair,
    tunnel: &TunnelConfig,
    included_applications: &[String],
) -> String {
    render(keys, tunnel, Some(included_applications))
}

fn render(keys: &KeyPair, tunnel: &TunnelConfig, wg_quick: Option<&[String]>) -> String {
    let mut conf = String::from("[Interface]\n");
    // Writing to a String cannot fail.
    let _ = writeln!(conf, "PrivateKey = {}", keys.private_base64());
    if let Some(apps) = wg_quick {
        for address in &tunnel.addresses {
            let _ = writeln!(conf, "Address = {address}");
        }
        for server in &tunnel.dns_servers {
            let _ = writeln!(conf, "DNS = {server}");
        }
        for domain in &tunnel.search_domains {
            let _ = writeln!(conf, "DNS = {domain}");
        }
        if !apps.is_empty() {
            let _ = writeln!(conf, "IncludedApplications = {}", apps.join(", "));
        }
    }
    let _ = writeln!(conf, "\n[Peer]");
    let _ = writeln!(conf, "PublicKey = {}", encode_key(&tunnel.peer_public_key));
    let _ = writeln!(conf, "Endpoint = {}", tunnel.endpoint);
    let _ = writeln!(conf, "PersistentKeepalive = {PERSISTENT_KEEPALIVE}");
    for allowed in &tunnel.allowed_ips {
        let _ = writeln!(conf, "AllowedIPs = {allowed}");
    }
    conf
}

/// The `resolv.conf` the original writes: the name servers, the search
/// domains, `options ndots:5`.
pub fn resolv_conf(tunnel: &TunnelConfig) -> String {
    let mut conf = String::new();
    for server in &tunnel.dns_servers {
        let _ = writeln!(conf, "nameserver {server}");
    }
    if !tunnel.search_domains.is_empty() {
        let _ = writeln!(conf, "search {}", tunnel.search_domains.join(" "));
    }
    let _ = writeln!(conf, "options ndots:{NDOTS}");
    conf
}

/// How [`qrcode()`] draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrStyle {
    /// Two modules per character with half blocks (`▀▄█`), light modules
    /// drawn, for a dark terminal (the original's `--qrcode compact`).
    Compact,
    /// One module per character, `⬛` dark and `⬜` light (the original's
    /// `--qrcode alt`).
    Alt,
}

/// The config does not fit in a QR code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the configuration ({0} bytes) is too large for a QR code")]
pub struct QrTooLarge(pub usize);

/// `config` as a QR code drawn with text, one line per row (each ending in
/// `\n`), with a quiet zone of 4 modules: the very code the original draws.
/// Encoded as the original does (segno `make_qr(mode="byte",
/// encoding="utf-8", eci=True)`): byte mode behind a UTF-8 ECI designator,
/// the smallest version at level L, then the highest error correction level
/// that still fits that version, and segno's choice of data mask.
pub fn qrcode(config: &str, style: QrStyle) -> Result<String, QrTooLarge> {
    let (width, modules) = encode(config.as_bytes()).ok_or(QrTooLarge(config.len()))?;
    const BORDER: usize = 4;
    let size = width + 2 * BORDER;
    let dark = |x: usize, y: usize| -> bool {
        x >= BORDER
            && y >= BORDER
            && x < BORDER + width
            && y < BORDER + width
            && modules[(y - BORDER) * width + (x - BORDER)]
    };
    let mut out = String::new();
    match style {
        QrStyle::Alt => {
            for y in 0..size {
                for x in 0..size {
                    out.push(if dark(x, y) { '⬛' } else { '⬜' });
                }
                out.push('\n');
            }
        }
        QrStyle::Compact => {
            for y in (0..size).step_by(2) {
                for x in 0..size {
                    // Past the last row counts as dark, as in segno.
                    let bottom = y + 1 >= size || dark(x, y + 1);
                    out.push(match (dark(x, y), bottom) {
                        (true, true) => ' ',
                        (false, true) => '▀',
                        (true, false) => '▄',
                        (false, false) => '█',
                    });
                }
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// The QR code segno makes for `data` in byte mode with a UTF-8 ECI: its
/// width and its modules (row by row, true for dark).
fn encode(data: &[u8]) -> Option<(usize, Vec<bool>)> {
    const UTF8_ECI: u32 = 26;
    let bits_for = |version: i16, level: EcLevel| -> Option<Bits> {
        let mut bits = Bits::new(Version::Normal(version));
        bits.push_eci_designator(UTF8_ECI).ok()?;
        bits.push_byte_data(data).ok()?;
        bits.push_terminator(level).ok()?;
        Some(bits)
    };
    let number = (1..=40).find(|&v| bits_for(v, EcLevel::L).is_some())?;
    let mut level = EcLevel::L;
    for better in [EcLevel::M, EcLevel::Q, EcLevel::H] {
        if bits_for(number, better).is_some() {
            level = better;
        } else {
            break;
        }
    }
    let version = Version::Normal(number);
    let raw = bits_for(number, level)?.into_bytes();
    let (codewords, ec) = construct_codewords(&raw, version, level).ok()?;
    let mut canvas = Canvas::new(version, level);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&codewords, &ec);
    let width = usize::try_from(version.width()).ok()?;
    let reserved = reserved_modules(width);
    // segno scores each mask before the format and version information and
    // the dark module are drawn (ISO/IEC 18004:2015 7.8), which the qrcode
    // crate does not, so its choice can differ: choose as segno does.
    MASKS
        .iter()
        .map(|&mask| {
            let mut masked = canvas.clone();
            masked.apply_mask(mask);
            let modules: Vec<bool> = (0..width)
                .flat_map(|y| (0..width).map(move |x| (x, y)))
                .map(|(x, y)| {
                    let at = |i: usize| i16::try_from(i).unwrap_or_default();
                    masked.get(at(x), at(y)).is_dark()
                })
                .collect();
            let unformatted: Vec<bool> = modules
                .iter()
                .zip(&reserved)
                .map(|(&dark, &reserved)| dark && !reserved)
                .collect();
            (penalty(&unformatted, width), modules)
        })
        .min_by_key(|(score, _)| *score)
        .map(|(_, modules)| (width, modules))
}

/// The data masks in the order of their numbers (segno keeps the first of
/// equal scores).
const MASKS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// The modules that are light while segno scores masks: the format
/// information areas (but for the two timing modules in them, and with the
/// dark module) and, from version 7, the version information areas.
fn reserved_modules(n: usize) -> Vec<bool> {
    let mut reserved = vec![false; n * n];
    let mut set = |row: usize, col: usize| reserved[row * n + col] = true;
    for i in 0..9 {
        if i != 6 {
            set(i, 8);
            set(8, i);
        }
    }
    for i in 1..9 {
        set(n - i, 8);
        set(8, n - i);
    }
    if n > 41 {
        for i in 0..6 {
            for k in 9..12 {
                set(i, n - k);
                set(n - k, i);
            }
        }
    }
    reserved
}

/// segno's mask penalty (`encoder.mask_scores`): N1 + N2 + N3 + N4, with
/// its treatment of finder-like patterns at the edges.
fn penalty(modules: &[bool], n: usize) -> u32 {
    let at = |row: usize, col: usize| u8::from(modules[row * n + col]);
    let finder_like = |seq: &[u8]| -> u32 {
        const PATTERN: [u8; 7] = [1, 0, 1, 1, 1, 0, 1];
        let find = |from: usize| (from..(n.saturating_sub(6))).find(|&i| seq[i..i + 7] == PATTERN);
        let light = |range: std::ops::Range<usize>| seq[range].iter().all(|&b| b == 0);
        let mut score = 0;
        let mut next = find(0);
        while let Some(idx) = next {
            let mut offset = idx + 7;
            if idx == 0
                || idx == n - 7
                || light(idx.saturating_sub(4)..idx)
                || light(offset.min(n)..(offset + 4).min(n))
            {
                score += 40;
            } else {
                offset = idx + 4;
            }
            next = find(offset);
        }
        score
    };
    let (mut n1, mut n2, mut n3, mut dark) = (0u32, 0u32, 0u32, 0u32);
    let run_score = |run: u32| if run >= 5 { run - 2 } else { 0 };
    for i in 0..n {
        let (mut row_prev, mut col_prev) = (None, None);
        let (mut row_run, mut col_run) = (0u32, 0u32);
        for j in 0..n {
            let row_bit = at(i, j);
            let col_bit = at(j, i);
            dark += u32::from(row_bit);
            if Some(row_bit) == row_prev {
                row_run += 1;
            } else {
                n1 += run_score(row_run);
                row_run = 1;
            }
            if Some(col_bit) == col_prev {
                col_run += 1;
            } else {
                n1 += run_score(col_run);
                col_run = 1;
            }
            if i > 0
                && j > 0
                && Some(row_bit) == row_prev
                && row_bit == at(i - 1, j)
                && row_bit == at(i - 1, j - 1)
            {
                n2 += 3;
            }
            row_prev = Some(row_bit);
            col_prev = Some(col_bit);
        }
        n3 += finder_like(&modules_row(modules, n, i));
        let column: Vec<u8> = (0..n).map(|j| at(j, i)).collect();
        n3 += finder_like(&column);
        n1 += run_score(row_run) + run_score(col_run);
    }
    let percent = f64::from(dark) / (n * n) as f64;
    // As segno: 10 × int(|percent × 100 − 50| / 5).
    let n4 = 10 * (((percent * 100.0 - 50.0).abs() / 5.0) as u32);
    n1 + n2 + n3 + n4
}

fn modules_row(modules: &[bool], n: usize, row: usize) -> Vec<u8> {
    modules[row * n..(row + 1) * n]
        .iter()
        .map(|&dark| u8::from(dark))
        .collect()
}
