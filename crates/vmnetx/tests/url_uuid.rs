#![allow(clippy::unwrap_used)]
//! VMNetX URL canonicalisation and Sinfonia UUIDs: the reference vectors, a
//! differential test against the real `olive2022` (yarl), hostile inputs and
//! download URLs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use vmnetx::url::{MAX_URL_LENGTH, OLIVEARCHIVE_NAMESPACE, UrlError, VmnetxUrl, download_url};

// ---------------------------------------------------------------------------
// 1. Reference vectors (tests/data/vmnetx-uuid.tsv: URL, TAB, UUID as the
//    original olive2022 0.1.7 computes it)
// ---------------------------------------------------------------------------

#[test]
fn reference_vectors() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vmnetx-uuid.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the test vectors {}: {e}", path.display()));
    let mut count = 0;
    let mut failures = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (url, expected) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("line {}: no TAB in {line:?}", number + 1));
        count += 1;
        match VmnetxUrl::parse(url) {
            Ok(parsed) if parsed.sinfonia_uuid().to_string() == expected.trim() => {}
            Ok(parsed) => failures.push(format!(
                "line {}: {url:?} -> {} = {}, expected {expected}",
                number + 1,
                parsed.canonical(),
                parsed.sinfonia_uuid()
            )),
            Err(e) => failures.push(format!("line {}: {url:?} -> error {e}", number + 1)),
        }
    }
    assert!(count > 0, "no vectors in {}", path.display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn namespace_and_basic_form() {
    assert_eq!(
        OLIVEARCHIVE_NAMESPACE.to_string(),
        "835a9728-a1f7-4d0f-82f8-cd0da8838673"
    );
    let url: VmnetxUrl = "VMNETX://OliveArchive.org:0443/a/./b/../c?token=x#y"
        .parse()
        .unwrap();
    assert_eq!(url.canonical(), "vmnetx+https://olivearchive.org:443/a/c");
    assert_eq!(url.to_string(), url.canonical());
}

// ---------------------------------------------------------------------------
// 2. Differential test against olive2022 (yarl)
// ---------------------------------------------------------------------------

/// Tricky URLs, each a reason yarl may normalise differently.
const CURATED: &[&str] = &[
    // Schemes and the parts that are dropped.
    "vmnetx://olivearchive.org/launch/x/package.nxpk",
    "VMNETX+HTTPS://olivearchive.org/a",
    "Vmnetx+Http://olivearchive.org/a",
    "https://olivearchive.org/a?token=abc#frag",
    "http://olivearchive.org/a?",
    "vmnetx://olivearchive.org/a#",
    "vmnetx://olivearchive.org?x=1",
    "vmnetx://olivearchive.org#frag",
    "vmnetx://olivearchive.org?",
    "vmnetx://olivearchive.org/",
    "vmnetx://olivearchive.org",
    "vmnetx://olivearchive.org/a#b?c",
    "vmnetx://olivearchive.org/a?b#c?d",
    "   vmnetx://olivearchive.org/leading-spaces",
    "vmnetx://olivearchive.org/trailing-space ",
    "vmnetx://olivearchive.org/a b",
    // Host case, dots, IDNA.
    "vmnetx://OliveArchive.ORG/x",
    "vmnetx://olivearchive.org./x",
    "vmnetx://olivearchive.org../x",
    "vmnetx://.olivearchive.org/x",
    "vmnetx://straße.de/x",
    "vmnetx://STRASSE.de/x",
    "vmnetx://Straße.DE/x",
    "vmnetx://BÜCHER.example/x",
    "vmnetx://bücher.example/x",
    "vmnetx://xn--bcher-kva.example/x",
    "vmnetx://XN--BCHER-KVA.example/x",
    "vmnetx://xn--zz.example/x",
    "vmnetx://☃.net/x",
    "vmnetx://💩.la/x",
    "vmnetx://💩.LA/x",
    "vmnetx://straße.💩.de/x",
    "vmnetx://ẞ.de/x",
    "vmnetx://ΣΑΣ.gr/x",
    "vmnetx://ς.gr/x",
    "vmnetx://日本語.jp/x",
    "vmnetx://日本語。jp/x",
    "vmnetx://ｆｕｌｌｗｉｄｔｈ.com/x",
    "vmnetx://ü_x.Foo_Bar/x",
    "vmnetx://ü x.com/x",
    "vmnetx://ü%41.com/x",
    "vmnetx://a\u{200b}b.com/x",
    "vmnetx://a\u{00ad}ü.com/x",
    "vmnetx://\u{2100}.com/x",
    "vmnetx://ü\u{ff0f}x.com/x",
    "vmnetx://עברית.il/x",
    "vmnetx://عربي.com/x",
    "vmnetx://a١.com/x",
    "vmnetx://l·l.cat/x",
    "vmnetx://-ü.com/x",
    "vmnetx://ü-.com/x",
    "vmnetx://ab--ü.com/x",
    "vmnetx://\u{0301}ü.com/x",
    "vmnetx://ü..com/x",
    "vmnetx://ü.com./x",
    "vmnetx://①②.com/x",
    "vmnetx://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaü.com/x",
    "vmnetx://ex ample.com/x",
    "vmnetx://host%zz/x",
    "vmnetx://HOST%41/x",
    "vmnetx://a_b.example/x",
    // IP addresses.
    "vmnetx://127.0.0.1/x",
    "vmnetx://127.0.0.01/x",
    "vmnetx://127.1/x",
    "vmnetx://256.0.0.1/x",
    "vmnetx://1.2.3.4%ETH0/x",
    "vmnetx://1.2.3.4%25eth0/x",
    "vmnetx://[::1]/x",
    "vmnetx://[::1]:8080/x",
    "vmnetx://[2001:DB8:0:0:0:0:0:1]/x",
    "vmnetx://[2001:db8:0:0:1:0:0:1]/x",
    "vmnetx://[0:0:0:0:0:0:0:0]/x",
    "vmnetx://[1:0:0:0:0:0:0:0]/x",
    "vmnetx://[1:2:3:4:5:6:7:8]/x",
    "vmnetx://[1:0:2:3:4:5:6:7]/x",
    "vmnetx://[::ffff:192.0.2.1]/x",
    "vmnetx://[::FFFF:C000:0201]/x",
    "vmnetx://[fe80::1%25eth0]/x",
    "vmnetx://[fe80::1%eth0]/x",
    "vmnetx://[fe80::1%25]/x",
    "vmnetx://[::1]x/x",
    "vmnetx://[::1/x",
    "vmnetx://::1]/x",
    "vmnetx://[1.2.3.4]/x",
    "vmnetx://[::zz]/x",
    "vmnetx://[v1.fe]/x",
    "vmnetx://[vz.fe]/x",
    "vmnetx://a[::1]/x",
    "vmnetx://[::1][::2]/x",
    "vmnetx://[]/x",
    "vmnetx://[1::2::3]/x",
    // User info.
    "vmnetx://user@olivearchive.org/x",
    "vmnetx://User:Pass@olivearchive.org/x",
    "vmnetx://user:p%40ss@olivearchive.org/x",
    "vmnetx://us%65r:p%3aw%7e@olivearchive.org/x",
    "vmnetx://a@b@olivearchive.org/x",
    "vmnetx://a:b:c@olivearchive.org/x",
    "vmnetx://:@olivearchive.org/x",
    "vmnetx://@olivearchive.org/x",
    "vmnetx://user:@olivearchive.org/x",
    "vmnetx://:pw@olivearchive.org/x",
    "vmnetx://ü:ß@olivearchive.org/x",
    "vmnetx://a b:c%zz%@olivearchive.org/x",
    "vmnetx://a]@[::1]/x",
    "vmnetx://user@/x",
    // Ports.
    "vmnetx://olivearchive.org:443/x",
    "vmnetx://olivearchive.org:80/x",
    "vmnetx://olivearchive.org:0/x",
    "vmnetx://olivearchive.org:0443/x",
    "vmnetx://olivearchive.org:00000000000000000000080/x",
    "vmnetx://olivearchive.org:65535/x",
    "vmnetx://olivearchive.org:65536/x",
    "vmnetx://olivearchive.org:/x",
    "vmnetx://olivearchive.org:8a/x",
    "vmnetx://olivearchive.org:-1/x",
    "vmnetx://olivearchive.org:1:2/x",
    "https://olivearchive.org:443/x",
    "http://olivearchive.org:80/x",
    "vmnetx://:443/x",
    // Dot segments.
    "vmnetx://h/a/b/../c",
    "vmnetx://h/a/./b",
    "vmnetx://h/..",
    "vmnetx://h/../..",
    "vmnetx://h/../a",
    "vmnetx://h/./a",
    "vmnetx://h/a/..",
    "vmnetx://h/a/.",
    "vmnetx://h/a/../",
    "vmnetx://h/a/%2e%2E/b",
    "vmnetx://h/a/%2E/b",
    "vmnetx://h/a/.%2e",
    "vmnetx://h/a/.../b",
    "vmnetx://h/a/..b/c",
    "vmnetx://h//a//b//",
    "vmnetx://h//../a",
    "vmnetx://h/a//..",
    "vmnetx://h/.",
    // Percent-encoding.
    "vmnetx://h/%7e%7E%41%61%30%2d%2e%5f",
    "vmnetx://h/%21%24%26%27%28%29%2a%2b%2c%3b%3d",
    "vmnetx://h/%3a%40%2f%3f%23%25%5b%5d",
    "vmnetx://h/%20%22%3c%3e%5c%5e%60%7b%7c%7d",
    "vmnetx://h/%c3%a9%C3%A9%e2%82%ac",
    "vmnetx://h/%ff%fe%80",
    "vmnetx://h/%",
    "vmnetx://h/%%",
    "vmnetx://h/%%41",
    "vmnetx://h/%4",
    "vmnetx://h/%zz",
    "vmnetx://h/%g1",
    "vmnetx://h/100%",
    "vmnetx://h/a%2",
    "vmnetx://h/é/ü/日本/💩",
    "vmnetx://h/a b/c\"d<e>f",
    "vmnetx://h/a;p=1;q/b;x",
    "vmnetx://h/a+b/c%2Bd",
    "vmnetx://h/[x]/{y}/|z|/^/`",
    "vmnetx://h/a\\b\\..\\c",
    "vmnetx://h/user@host:port/x",
    "vmnetx://h/~user/!$&'()*,;=",
    "vmnetx://h/\u{00a0}\u{2028}\u{feff}",
    "vmnetx://h/\u{80}\u{9f}",
    // Structure.
    "vmnetx:olivearchive.org/x",
    "vmnetx:/olivearchive.org/x",
    "vmnetx:///x",
    "vmnetx://",
    "vmnetx://?x",
    "vmnetx://#x",
    "https:///x",
    "//olivearchive.org/x",
    "olivearchive.org/x",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "ftp://olivearchive.org/x",
    "vmnetx_x://olivearchive.org/x",
    "1vmnetx://olivearchive.org/x",
    "vmnetx://ho\\st/x",
    "",
    "   ",
];

/// One answer of the oracle.
#[derive(Debug)]
enum Oracle {
    /// The canonical URL and the UUID.
    Ok(String, String),
    /// The exception yarl raised.
    Err(String),
}

/// The oracle script: one hex-encoded URL a line in, one answer a line out.
const ORACLE_SCRIPT: &str = r#"
import sys
sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")
from yarl import URL
from olive2022 import vmnetx_url_to_uuid
for line in sys.stdin.buffer:
    try:
        s = bytes.fromhex(line.decode("ascii").strip()).decode("utf-8")
        u = URL(s)
        c = str(u.with_scheme("vmnetx+https").with_query(None).with_fragment(None))
        print("OK", c.encode("utf-8").hex(), vmnetx_url_to_uuid(u), flush=False)
    except Exception as e:
        print("ERR", repr(type(e).__name__ + ": " + str(e))[:300])
sys.stdout.flush()
"#;

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    String::from_utf8(bytes).unwrap()
}

/// Runs all URLs through olive2022 in one Python process.
fn run_oracle(urls: &[String]) -> Vec<Oracle> {
    let python = PathBuf::from(
        std::env::var_os("OLIVE2022_ORACLE_PYTHON")
            .unwrap_or_else(|| "/opt/olive-oracle/bin/python3".into()),
    );
    assert!(
        python.exists(),
        "the olive2022 oracle {} is missing; install it with \
         `python3 -m venv /opt/olive-oracle && /opt/olive-oracle/bin/pip install olive2022==0.1.7` \
         or point OLIVE2022_ORACLE_PYTHON at a Python that has olive2022 0.1.7",
        python.display()
    );
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(ORACLE_SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the oracle {}: {e}", python.display()));
    let mut stdin = child.stdin.take().unwrap();
    let input: String = urls.iter().map(|u| hex(u) + "\n").collect();
    let writer = std::thread::spawn(move || {
        stdin.write_all(input.as_bytes()).unwrap();
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        output.status.success(),
        "the oracle {} failed ({}); is olive2022 0.1.7 installed in it? stderr:\n{}",
        python.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let answers: Vec<Oracle> = stdout
        .lines()
        .map(|line| {
            let mut fields = line.splitn(3, ' ');
            match (fields.next(), fields.next(), fields.next()) {
                (Some("OK"), Some(canonical), Some(uuid)) => {
                    Oracle::Ok(unhex(canonical), uuid.to_owned())
                }
                (Some("ERR"), Some(first), rest) => {
                    Oracle::Err(format!("{first} {}", rest.unwrap_or_default()))
                }
                _ => panic!("unexpected oracle output line {line:?}"),
            }
        })
        .collect();
    assert_eq!(
        answers.len(),
        urls.len(),
        "the oracle answered {} of {} URLs",
        answers.len(),
        urls.len()
    );
    answers
}

/// The host of a canonical URL printed by the oracle, if it has an authority.
fn oracle_host(canonical: &str) -> Option<&str> {
    let rest = canonical.strip_prefix("vmnetx+https://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let hostinfo = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostinfo.starts_with('[') {
        return Some(hostinfo.split_once(']').map_or(hostinfo, |(h, _)| h));
    }
    Some(hostinfo.split_once(':').map_or(hostinfo, |(h, _)| h))
}

/// Whether our error, where olive2022 accepts the URL, is one of the
/// deliberate refusals of untrusted input, checked independently.
fn deliberate_refusal(url: &str, error: &UrlError, oracle_canonical: &str) -> bool {
    match error {
        UrlError::ControlCharacter { .. } => url.chars().any(|c| c < ' ' || c == '\u{7f}'),
        UrlError::TooLong { .. } => url.len() > MAX_URL_LENGTH,
        UrlError::Empty => url.trim_start_matches(' ').is_empty(),
        UrlError::MissingScheme | UrlError::UnsupportedScheme(_) => {
            let url = url.trim_start_matches(' ');
            !url.split_once(':').is_some_and(|(scheme, _)| {
                ["vmnetx", "vmnetx+http", "vmnetx+https", "http", "https"]
                    .contains(&scheme.to_ascii_lowercase().as_str())
            })
        }
        UrlError::MissingHost => oracle_host(oracle_canonical).is_none_or(str::is_empty),
        UrlError::InvalidPort(text) => {
            !text.is_empty() && !text.bytes().all(|b| b.is_ascii_digit())
        }
        UrlError::InvalidIpv6 { .. } => {
            oracle_host(oracle_canonical).is_some_and(|h| !h.starts_with('['))
        }
        _ => false,
    }
}

/// How the URLs compared.
#[derive(Debug, Default)]
struct Stats {
    /// Same canonical URL and UUID.
    same: usize,
    /// Errors on both sides.
    both_errors: usize,
    /// Deliberate refusals where olive2022 accepts.
    refusals: usize,
}

/// Compares our parser with the oracle's answers, collecting mismatches.
fn compare(urls: &[String], answers: &[Oracle], mismatches: &mut Vec<String>) -> Stats {
    let mut stats = Stats::default();
    for (url, oracle) in urls.iter().zip(answers) {
        let ours = VmnetxUrl::parse(url);
        match (&ours, oracle) {
            (Ok(ours), Oracle::Ok(canonical, uuid)) => {
                if ours.canonical() == canonical && ours.sinfonia_uuid().to_string() == *uuid {
                    stats.same += 1;
                } else {
                    mismatches.push(format!(
                        "{url:?}\n    ours:     {} {}\n    olive2022: {canonical} {uuid}",
                        ours.canonical(),
                        ours.sinfonia_uuid()
                    ));
                }
            }
            (Err(_), Oracle::Err(_)) => stats.both_errors += 1,
            (Err(error), Oracle::Ok(canonical, _)) if deliberate_refusal(url, error, canonical) => {
                stats.refusals += 1;
            }
            (Err(error), Oracle::Ok(canonical, uuid)) => mismatches.push(format!(
                "{url:?}\n    ours:     error: {error}\n    olive2022: {canonical} {uuid}"
            )),
            (Ok(ours), Oracle::Err(error)) => mismatches.push(format!(
                "{url:?}\n    ours:     {} {}\n    olive2022: error: {error}",
                ours.canonical(),
                ours.sinfonia_uuid()
            )),
        }
    }
    stats
}

/// A small deterministic xorshift generator.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// URLs assembled from tricky fragments.
fn generated_urls(count: usize) -> Vec<String> {
    const SCHEMES: &[&str] = &[
        "vmnetx://",
        "VMNETX://",
        "vmnetx+https://",
        "vmnetx+http://",
        "Vmnetx+Https://",
        "https://",
        "HTTP://",
        "vmnetx:",
        "vmnetx:/",
        "ftp://",
        "//",
        " vmnetx://",
    ];
    const USERINFO: &[&str] = &[
        "",
        "",
        "",
        "",
        "user@",
        "user:pass@",
        ":@",
        "@",
        "user:@",
        ":pw@",
        "u%40x:p%3a@",
        "ü:ß@",
        "a b:c@",
        "us%zzer@",
        "a@b@",
        "a:b:c@",
        "%7E%41@",
        "x]@",
    ];
    const HOSTS: &[&str] = &[
        "olivearchive.org",
        "olivearchive.org",
        "OliveArchive.ORG",
        "example.com.",
        "straße.de",
        "BÜCHER.example",
        "xn--bcher-kva.example",
        "☃.net",
        "💩.LA",
        "ΣΑΣ.gr",
        "日本語。jp",
        "ü_x.Foo",
        "ａｂｃ.com",
        "127.0.0.1",
        "127.000.0.1",
        "10.0.0.255",
        "1.2.3.4%25Zone1",
        "1.2.3",
        "[::1]",
        "[2001:DB8:0:0:0:0:0:1]",
        "[::ffff:192.0.2.1]",
        "[fe80::1%25eth0]",
        "[1:0:0:2:0:0:0:3]",
        "[::zz]",
        "[v1.x]",
        "a_b.example",
        "host%41",
        "ex ample",
        "",
        "ü..com",
        "-ü.com",
        "عربي.com",
        "l·l.cat",
    ];
    const PORTS: &[&str] = &[
        "", "", "", "", ":", ":0", ":80", ":443", ":0443", ":65535", ":65536", ":8a", ":+1",
    ];
    const SEGMENTS: &[&str] = &[
        "",
        "a",
        "b",
        "..",
        ".",
        "%2e",
        "%2E%2e",
        "%7e",
        "%7E",
        "%41",
        "%2f",
        "%2F",
        "%3f",
        "%23",
        "%25",
        "%",
        "%z",
        "%zz",
        "%c3%a9",
        "%C3%A9",
        "é",
        "ü",
        " ",
        "a b",
        ";p=1",
        "+",
        "[x]",
        "\\",
        "@",
        ":",
        "!$&'()*,;=",
        "%5b",
        "%20",
        "~user",
        "日本",
        "%e2%82",
        "a%2",
        "%%41",
        "%3A%40",
        "%2B",
        "%ff",
        "package.nxpk",
        "\"<>^`{|}",
    ];
    const QUERIES: &[&str] = &["", "", "", "?", "?a=1", "?token=a b", "?%41=%3d", "?x#y"];
    const FRAGMENTS: &[&str] = &["", "", "", "#", "#frag", "#a?b", "#%zz"];

    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    (0..count)
        .map(|_| {
            let mut url = String::new();
            url.push_str(rng.pick(SCHEMES));
            url.push_str(rng.pick(USERINFO));
            url.push_str(rng.pick(HOSTS));
            url.push_str(rng.pick(PORTS));
            for _ in 0..rng.below(6) {
                url.push('/');
                url.push_str(rng.pick(SEGMENTS));
                if rng.below(8) == 0 {
                    url.push_str(rng.pick(SEGMENTS));
                }
            }
            url.push_str(rng.pick(QUERIES));
            url.push_str(rng.pick(FRAGMENTS));
            url
        })
        .collect()
}

/// URLs whose host is made of random characters from many scripts and
/// blocks, for the two IDNA flavours yarl uses (and the Unicode versions
/// behind them).
fn generated_idna_urls(count: usize) -> Vec<String> {
    const RANGES: &[(u32, u32)] = &[
        (0x21, 0x7E),       // ASCII, upper case and punctuation included
        (0x61, 0x7A),       // ASCII lower case, twice as likely
        (0xA0, 0x24F),      // Latin-1, Latin Extended
        (0x300, 0x36F),     // combining marks
        (0x370, 0x3FF),     // Greek (final sigma, symbols)
        (0x400, 0x4FF),     // Cyrillic
        (0x591, 0x5F4),     // Hebrew
        (0x600, 0x6FF),     // Arabic, both kinds of digits
        (0x700, 0x74F),     // Syriac
        (0x900, 0x97F),     // Devanagari (virama, nukta)
        (0x10A0, 0x10FF),   // Georgian
        (0x13A0, 0x13FD),   // Cherokee
        (0x1B00, 0x1B7F),   // Balinese (changed in Unicode 16)
        (0x1C90, 0x1CBF),   // Georgian Mtavruli (Unicode 11)
        (0x1E00, 0x1EFF),   // Latin Extended Additional (ẞ)
        (0x2000, 0x206F),   // punctuation, invisible characters
        (0x2100, 0x218F),   // letterlike symbols, numerals
        (0x2460, 0x24FF),   // enclosed alphanumerics
        (0x2600, 0x26FF),   // symbols
        (0x2800, 0x28FF),   // Braille
        (0x3000, 0x30FF),   // CJK punctuation, kana
        (0x3300, 0x33FF),   // CJK compatibility
        (0x4E00, 0x4E80),   // CJK ideographs
        (0xAB70, 0xABBF),   // Cherokee small letters (Unicode 8)
        (0xAC00, 0xAC80),   // Hangul
        (0xF900, 0xFAFF),   // CJK compatibility ideographs
        (0xFB00, 0xFB4F),   // ligatures
        (0xFE30, 0xFE6F),   // small and vertical forms
        (0xFF00, 0xFFEF),   // full-width, half-width
        (0x10900, 0x1093F), // Phoenician (right-to-left, Unicode 5)
        (0x1D400, 0x1D7FF), // mathematical alphanumerics
        (0x1F100, 0x1F1FF), // enclosed alphanumeric supplement
        (0x1F300, 0x1F64F), // emoji
        (0x1E4D0, 0x1E4FF), // Nag Mundari (Unicode 15)
        (0x2F800, 0x2FA1F), // CJK compatibility supplement
        (0x31350, 0x313A0), // CJK extension H (Unicode 15)
    ];
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let random_char = |rng: &mut XorShift| loop {
        let (start, end) = RANGES[rng.below(RANGES.len())];
        let cp = start + rng.below((end - start + 1) as usize) as u32;
        if let Some(c) = char::from_u32(cp)
            && !matches!(c, '/' | '?' | '#' | '@' | ':' | '[' | ']' | '\\')
        {
            return c;
        }
    };
    (0..count)
        .map(|_| {
            let mut host = String::new();
            for label in 0..=rng.below(3) {
                if label > 0 {
                    host.push(if rng.below(5) == 0 { '\u{3002}' } else { '.' });
                }
                for _ in 0..=rng.below(6) {
                    host.push(random_char(&mut rng));
                }
            }
            if rng.below(8) == 0 {
                host.push('.');
            }
            format!("vmnetx://{host}/x")
        })
        .collect()
}

#[test]
fn differential_against_olive2022() {
    assert!(CURATED.len() >= 80);
    let sets: [(&str, Vec<String>); 3] = [
        ("curated", CURATED.iter().map(|s| (*s).to_owned()).collect()),
        ("generated from fragments", generated_urls(4000)),
        ("generated IDNA hosts", generated_idna_urls(3000)),
    ];
    let urls: Vec<String> = sets.iter().flat_map(|(_, set)| set.clone()).collect();
    // One Python process for all of them.
    let answers = run_oracle(&urls);
    let mut mismatches = Vec::new();
    let mut start = 0;
    let mut all_stats = Vec::new();
    for (name, set) in &sets {
        let end = start + set.len();
        let stats = compare(&urls[start..end], &answers[start..end], &mut mismatches);
        eprintln!("{name} URLs compared with olive2022: {stats:?}");
        all_stats.push(stats);
        start = end;
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} URLs differ from olive2022:\n{}",
        mismatches.len(),
        urls.len(),
        mismatches.join("\n")
    );
    // The comparison must not be vacuous.
    assert!(
        all_stats.iter().all(|stats| stats.same >= 80),
        "{all_stats:?}"
    );
}

// ---------------------------------------------------------------------------
// 3. Hostile inputs
// ---------------------------------------------------------------------------

/// Whether an error is the expected one.
type ErrorCheck = fn(&UrlError) -> bool;

#[test]
fn hostile_inputs_are_errors() {
    // Inputs grouped by the check their error must pass; the control
    // characters whose code or position is checked have a group each.
    let groups: &[(ErrorCheck, &[&str])] = &[
        (
            |e| matches!(e, UrlError::ControlCharacter { code: 10, .. }),
            &["vmnetx://host/a\nb"],
        ),
        (
            |e| matches!(e, UrlError::ControlCharacter { code: 9, .. }),
            &["vmnetx://host/a\tb"],
        ),
        (
            |e| matches!(e, UrlError::ControlCharacter { position: 0, .. }),
            &["\u{0}vmnetx://host/"],
        ),
        (
            |e| matches!(e, UrlError::ControlCharacter { code: 0x7f, .. }),
            &["vmnetx://host/\u{7f}"],
        ),
        (
            |e| matches!(e, UrlError::ControlCharacter { .. }),
            &["vmnetx://ho\rst/", "vmnetx://host/\u{1b}[31m"],
        ),
        (
            |e| matches!(e, UrlError::UnsupportedScheme(_)),
            &[
                "javascript:alert(1)",
                "JavaScript://host/%0aalert(1)",
                "file:///etc/passwd",
                "data:text/html,<script>",
            ],
        ),
        (
            |e| matches!(e, UrlError::MissingScheme),
            &["//host/x", "host/x"],
        ),
        (|e| matches!(e, UrlError::Empty), &["", "    "]),
        (
            |e| matches!(e, UrlError::MissingHost),
            &[
                "vmnetx:",
                "vmnetx://",
                "vmnetx:///x",
                "vmnetx:host/x",
                "vmnetx://user:pw@/x",
                "vmnetx://:443/x",
                "https:///x",
            ],
        ),
        (
            |e| matches!(e, UrlError::InvalidPort(_)),
            &[
                "vmnetx://host:65536/",
                "vmnetx://host:99999999999999999999999/",
                "vmnetx://host:http/",
                "vmnetx://host:-1/",
            ],
        ),
        (
            |e| matches!(e, UrlError::InvalidIpv6 { .. }),
            &[
                "vmnetx://[::1/",
                "vmnetx://[::zz]/",
                "vmnetx://[1.2.3.4]/",
                "vmnetx://[v1.x]/",
                "vmnetx://evil.com[::1]/",
                "vmnetx://[::1]evil.com/",
            ],
        ),
        (
            |e| matches!(e, UrlError::InvalidAuthority(_)),
            &["vmnetx://evil.com\\@good.com/", "vmnetx://a\u{2100}b.com/"],
        ),
        (
            |e| matches!(e, UrlError::InvalidHost { .. }),
            &["vmnetx://e\u{200b}vil.com/"],
        ),
    ];
    for (expected, inputs) in groups {
        for input in *inputs {
            match VmnetxUrl::parse(input) {
                Ok(url) => panic!("{input:?} was accepted as {}", url.canonical()),
                Err(e) => {
                    assert!(expected(&e), "{input:?}: unexpected error {e:?}");
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    let long = format!("vmnetx://host/{}", "a".repeat(100 * 1024));
    assert!(matches!(
        VmnetxUrl::parse(&long),
        Err(UrlError::TooLong { .. })
    ));
    let long_host = format!("vmnetx://{}/", "ü".repeat(4000));
    assert!(VmnetxUrl::parse(&long_host).is_err());
    let just_fits = format!("vmnetx://host/{}", "%".repeat(MAX_URL_LENGTH - 14));
    assert_eq!(just_fits.len(), MAX_URL_LENGTH);
    assert!(VmnetxUrl::parse(&just_fits).is_ok());

    // Credentials never show in error messages.
    let error = VmnetxUrl::parse("vmnetx://user:secret@[::1/x").unwrap_err();
    assert!(!error.to_string().contains("secret"), "{error}");
}

#[test]
fn random_garbage_never_panics() {
    const PIECES: &[&str] = &[
        "vmnetx",
        "://",
        ":",
        "/",
        "//",
        "?",
        "#",
        "@",
        "[",
        "]",
        "%",
        "%2",
        "%zz",
        "\\",
        ".",
        "..",
        "ü",
        "ß",
        "💩",
        "\u{200b}",
        "\u{0301}",
        "١",
        "٠",
        "\u{ff0f}",
        "\u{2100}",
        "1",
        "255",
        "::",
        "v1.",
        "xn--",
        "-",
        " ",
        "a",
        "Z",
        "\u{0}",
        "\u{7f}",
        "\u{fffd}",
        "\u{10ffff}",
        "\u{e000}",
        "ς",
        "l·l",
        "עב",
        "ﷺ",
        "ǅ",
        "\u{1e9e}",
        "0x",
        "65536",
    ];
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for _ in 0..20_000 {
        let mut s = String::new();
        for _ in 0..rng.below(24) {
            s.push_str(rng.pick(PIECES));
        }
        if let Ok(url) = VmnetxUrl::parse(&s) {
            assert!(url.canonical().starts_with("vmnetx+https://"));
            let _ = url.sinfonia_uuid();
            let _ = url.download_url();
        }
    }
}

// ---------------------------------------------------------------------------
// 4. Download URLs
// ---------------------------------------------------------------------------

#[test]
fn download_urls() {
    let cases = [
        (
            "vmnetx+https://olivearchive.org/launch/x/package.nxpk?token=abc#frag",
            "https://olivearchive.org/launch/x/package.nxpk?token=abc",
        ),
        (
            "vmnetx://olivearchive.org/launch/x/package.nxpk",
            "https://olivearchive.org/launch/x/package.nxpk",
        ),
        (
            "VMNETX+HTTP://Archive.example:8080/p.nxpk?x=1&y=2",
            "http://archive.example:8080/p.nxpk?x=1&y=2",
        ),
        ("http://host/p", "http://host/p"),
        ("https://host:443/a/../b", "https://host:443/b"),
        ("vmnetx://host", "https://host/"),
        ("vmnetx://host?q=1", "https://host/?q=1"),
        ("vmnetx://host/p?", "https://host/p"),
        ("vmnetx://host/p#only-fragment", "https://host/p"),
        (
            "vmnetx://host/p?t=a b&u=%3d%41",
            "https://host/p?t=a+b&u=%3DA",
        ),
        ("vmnetx://user:pw@host/p", "https://user:pw@host/p"),
        (
            "vmnetx://bücher.example/p",
            "https://xn--bcher-kva.example/p",
        ),
        ("vmnetx://[::FFFF:1.2.3.4]/p", "https://[::ffff:102:304]/p"),
    ];
    for (input, expected) in cases {
        assert_eq!(download_url(input).unwrap(), expected, "{input}");
        assert_eq!(VmnetxUrl::parse(input).unwrap().download_url(), expected);
    }
    for bad in [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "vmnetx:///x",
        "vmnetx://h/\n",
    ] {
        assert!(download_url(bad).is_err(), "{bad}");
    }
    // The download URL names the same VM.
    let a = VmnetxUrl::parse("vmnetx://h/p?token=1").unwrap();
    let b = VmnetxUrl::parse("https://h/p?token=2").unwrap();
    assert_eq!(a.sinfonia_uuid(), b.sinfonia_uuid());
    assert_ne!(a.download_url(), b.download_url());
}
