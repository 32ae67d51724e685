//! Non-ASCII host names to ASCII, as yarl's `_idna_encode` does it.
//!
//! yarl first tries the `idna` package (the UTS #46 mapping, then the IDNA
//! 2008 rules of RFCs 5891 to 5893) and, when it refuses the name, falls
//! back on Python's own IDNA 2003 codec (`encodings.idna`: nameprep, then
//! Punycode). Both are reproduced here on top of ICU4X, with the
//! differences that come from Python's Unicode databases corrected: Python
//! 3.11 knows Unicode 14, and nameprep runs on Unicode 3.2 (the range
//! tables of `tables`). The `idna` crate is only used for Punycode: its
//! UTS #46 processing does not fail where the Python package does.

use icu_normalizer::uts46::Uts46MapperBorrowed;
use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};
use icu_properties::props::{
    BidiClass, CanonicalCombiningClass, ChangesWhenNfkcCasefolded, DefaultIgnorableCodePoint,
    GeneralCategory, HangulSyllableType, JoinControl, JoiningType, NoncharacterCodePoint, Script,
};
use icu_properties::{CodePointMapData, CodePointSetData};

use super::split_before;
use super::tables::{ASSIGNED_AFTER_UNICODE_14, UNICODE_3_2_ASSIGNED};

/// The label separators of both IDNA flavours.
const DOTS: [char; 4] = ['.', '\u{3002}', '\u{FF0E}', '\u{FF61}'];

/// yarl's `_idna_encode` of a non-ASCII host.
pub(super) fn idna_encode(host: &str) -> Option<String> {
    idna2008_encode(host).or_else(|| idna2003_encode(host))
}

// ---------------------------------------------------------------------------
// IDNA 2008: the `idna` package
// ---------------------------------------------------------------------------

/// `idna.encode(host, uts46=True)` of the `idna` package.
fn idna2008_encode(host: &str) -> Option<String> {
    if host.chars().count() > 1024 {
        return None;
    }
    let mapped: String = Uts46MapperBorrowed::new()
        .map_normalize(host.chars())
        .collect();
    if mapped.contains('\u{FFFD}') || mapped.chars().count() > 254 {
        return None;
    }
    let mut labels: Vec<&str> = mapped.split(DOTS).collect();
    if labels.iter().all(|l| l.is_empty()) && labels.len() == 1 {
        return None;
    }
    let trailing_dot = labels.last().is_some_and(|l| l.is_empty());
    if trailing_dot {
        labels.pop();
    }
    let encoded = labels.into_iter().map(alabel).collect::<Option<Vec<_>>>()?;
    let mut out = encoded.join(".");
    if trailing_dot {
        out.push('.');
    }
    (out.len() <= 253 + usize::from(trailing_dot)).then_some(out)
}

/// `idna.alabel`: a label to its A-label form, checked.
fn alabel(label: &str) -> Option<String> {
    if label.is_ascii() {
        let lower = label.to_ascii_lowercase();
        if let Some(puny) = lower.strip_prefix("xn--") {
            if puny.is_empty() || puny.ends_with('-') {
                return None;
            }
            let decoded = idna::punycode::decode_to_string(puny)?;
            if idna::punycode::encode_str(&decoded)? != puny {
                return None;
            }
            check_label(&decoded)?;
        } else {
            check_label(&lower)?;
        }
        return (label.len() <= 63).then(|| label.to_owned());
    }
    check_label(label)?;
    punycode_label(label)
}

/// `xn--` and the Punycode of a label, if it fits in 63 bytes.
fn punycode_label(label: &str) -> Option<String> {
    // Punycode takes at least one byte per character.
    if label.chars().count() > 59 {
        return None;
    }
    let encoded = format!("xn--{}", idna::punycode::encode_str(label)?);
    (encoded.len() <= 63).then_some(encoded)
}

/// `idna.check_label`: the IDNA 2008 rules for one label.
fn check_label(label: &str) -> Option<()> {
    let chars: Vec<char> = label.chars().collect();
    if chars.is_empty() || chars.len() > 254 {
        return None;
    }
    // Python knows no bidirectional class for it.
    if !chars.iter().all(|&c| is_known_to_python(c)) {
        return None;
    }
    if ComposingNormalizerBorrowed::new_nfc().normalize(label) != label {
        return None;
    }
    if chars.get(2..4) == Some(&['-', '-'][..]) || label.starts_with('-') || label.ends_with('-') {
        return None;
    }
    if chars.first().is_some_and(|&c| is_mark(c)) {
        return None;
    }
    for (pos, &c) in chars.iter().enumerate() {
        let ok = match idna2008_class(c) {
            Idna2008Class::Pvalid => true,
            Idna2008Class::ContextJ => valid_contextj(&chars, pos),
            Idna2008Class::ContextO => valid_contexto(&chars, pos),
            Idna2008Class::Disallowed => false,
        };
        if !ok {
            return None;
        }
    }
    check_bidi(&chars).then_some(())
}

/// Whether a character is a mark (general category M).
fn is_mark(c: char) -> bool {
    matches!(
        CodePointMapData::<GeneralCategory>::new().get(c),
        GeneralCategory::NonspacingMark
            | GeneralCategory::SpacingMark
            | GeneralCategory::EnclosingMark
    )
}

/// The IDNA 2008 derived property of a code point (RFC 5892).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idna2008Class {
    Pvalid,
    ContextJ,
    ContextO,
    Disallowed,
}

/// RFC 5892, section 3, computed from the Unicode properties.
fn idna2008_class(c: char) -> Idna2008Class {
    use Idna2008Class::{ContextJ, ContextO, Disallowed, Pvalid};
    // Exceptions (F).
    match u32::from(c) {
        0xDF | 0x3C2 | 0x6FD | 0x6FE | 0xF0B | 0x3007 => return Pvalid,
        0xB7 | 0x375 | 0x5F3 | 0x5F4 | 0x30FB | 0x660..=0x669 | 0x6F0..=0x6F9 => {
            return ContextO;
        }
        0x640 | 0x7FA | 0x302E | 0x302F | 0x3031..=0x3035 | 0x303B => return Disallowed,
        _ => {}
    }
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    let noncharacter = CodePointSetData::new::<NoncharacterCodePoint>().contains(c);
    // Unassigned (J).
    if category == GeneralCategory::Unassigned && !noncharacter {
        return Disallowed;
    }
    // LDH (K).
    if c == '-' || c.is_ascii_digit() || c.is_ascii_lowercase() {
        return Pvalid;
    }
    // JoinControl (H).
    if CodePointSetData::new::<JoinControl>().contains(c) {
        return ContextJ;
    }
    // Unstable (B), IgnorableProperties (C), IgnorableBlocks (D).
    if CodePointSetData::new::<ChangesWhenNfkcCasefolded>().contains(c)
        || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || noncharacter
        || matches!(u32::from(c), 0x20D0..=0x20FF | 0x1D100..=0x1D24F)
    {
        return Disallowed;
    }
    // OldHangulJamo (I).
    let jamo = CodePointMapData::<HangulSyllableType>::new().get(c);
    if jamo == HangulSyllableType::LeadingJamo
        || jamo == HangulSyllableType::VowelJamo
        || jamo == HangulSyllableType::TrailingJamo
    {
        return Disallowed;
    }
    // LetterDigits (A).
    if matches!(
        category,
        GeneralCategory::LowercaseLetter
            | GeneralCategory::UppercaseLetter
            | GeneralCategory::OtherLetter
            | GeneralCategory::DecimalNumber
            | GeneralCategory::ModifierLetter
            | GeneralCategory::NonspacingMark
            | GeneralCategory::SpacingMark
    ) {
        return Pvalid;
    }
    Disallowed
}

/// The canonical combining class of `c` is Virama.
fn is_virama(c: char) -> bool {
    CodePointMapData::<CanonicalCombiningClass>::new().get(c) == CanonicalCombiningClass::Virama
}

/// `idna.valid_contextj` (RFC 5892, appendix A.1 and A.2).
fn valid_contextj(label: &[char], pos: usize) -> bool {
    let before = pos.checked_sub(1).and_then(|i| label.get(i)).copied();
    match label.get(pos) {
        Some('\u{200C}') => {
            if before.is_some_and(is_virama) {
                return true;
            }
            let joining = |c: char| CodePointMapData::<JoiningType>::new().get(c);
            let left = label
                .get(..pos)
                .unwrap_or_default()
                .iter()
                .rev()
                .map(|&c| joining(c))
                .find(|&jt| jt != JoiningType::Transparent);
            if !matches!(
                left,
                Some(JoiningType::LeftJoining | JoiningType::DualJoining)
            ) {
                return false;
            }
            let right = label
                .get(pos + 1..)
                .unwrap_or_default()
                .iter()
                .map(|&c| joining(c))
                .find(|&jt| jt != JoiningType::Transparent);
            matches!(
                right,
                Some(JoiningType::RightJoining | JoiningType::DualJoining)
            )
        }
        Some('\u{200D}') => before.is_some_and(is_virama),
        _ => false,
    }
}

/// `idna.valid_contexto` (RFC 5892, appendix A.3 to A.9).
fn valid_contexto(label: &[char], pos: usize) -> bool {
    let script = |c: char| CodePointMapData::<Script>::new().get(c);
    let before = pos.checked_sub(1).and_then(|i| label.get(i)).copied();
    let after = label.get(pos + 1).copied();
    let Some(&c) = label.get(pos) else {
        return false;
    };
    match u32::from(c) {
        0xB7 => before == Some('l') && after == Some('l'),
        0x375 => after.is_some_and(|a| script(a) == Script::Greek),
        0x5F3 | 0x5F4 => before.is_some_and(|b| script(b) == Script::Hebrew),
        0x30FB => label.iter().any(|&other| {
            other != '\u{30FB}'
                && matches!(
                    script(other),
                    Script::Hiragana | Script::Katakana | Script::Han
                )
        }),
        0x660..=0x669 => !label.iter().any(|&o| ('\u{6F0}'..='\u{6F9}').contains(&o)),
        0x6F0..=0x6F9 => !label.iter().any(|&o| ('\u{660}'..='\u{669}').contains(&o)),
        _ => false,
    }
}

/// `idna.check_bidi`: the Bidi Rule of RFC 5893, for labels holding
/// right-to-left characters.
fn check_bidi(label: &[char]) -> bool {
    use BidiClass as B;
    let classes: Vec<BidiClass> = label.iter().map(|&c| bidi_class_14(c)).collect();
    if !classes
        .iter()
        .any(|&d| d == B::RightToLeft || d == B::ArabicLetter || d == B::ArabicNumber)
    {
        return true;
    }
    let rtl = match classes.first() {
        Some(&d) if d == B::RightToLeft || d == B::ArabicLetter => true,
        Some(&d) if d == B::LeftToRight => false,
        _ => return false,
    };
    let mut valid_ending = false;
    let mut number_type = None;
    // Rules 2 to 4 of RFC 5893 for a right-to-left label, 5 and 6 for a
    // left-to-right one, as `idna.check_bidi` writes them: the two allowed
    // lists look alike but are different rules (R, AL, AN against L), so
    // they stay apart to be read against the RFC.
    for &d in &classes {
        if rtl {
            let allowed = [
                B::RightToLeft,
                B::ArabicLetter,
                B::ArabicNumber,
                B::EuropeanNumber,
                B::EuropeanSeparator,
                B::CommonSeparator,
                B::EuropeanTerminator,
                B::OtherNeutral,
                B::BoundaryNeutral,
                B::NonspacingMark,
            ];
            if !allowed.contains(&d) {
                return false;
            }
            if [
                B::RightToLeft,
                B::ArabicLetter,
                B::EuropeanNumber,
                B::ArabicNumber,
            ]
            .contains(&d)
            {
                valid_ending = true;
            } else if d != B::NonspacingMark {
                valid_ending = false;
            }
            if d == B::ArabicNumber || d == B::EuropeanNumber {
                match number_type {
                    None => number_type = Some(d),
                    Some(t) if t != d => return false,
                    Some(_) => {}
                }
            }
        } else {
            let allowed = [
                B::LeftToRight,
                B::EuropeanNumber,
                B::EuropeanSeparator,
                B::CommonSeparator,
                B::EuropeanTerminator,
                B::OtherNeutral,
                B::BoundaryNeutral,
                B::NonspacingMark,
            ];
            if !allowed.contains(&d) {
                return false;
            }
            if d == B::LeftToRight || d == B::EuropeanNumber {
                valid_ending = true;
            } else if d != B::NonspacingMark {
                valid_ending = false;
            }
        }
    }
    valid_ending
}

/// The bidirectional class of Unicode 14 (Python 3.11's `unicodedata`).
fn bidi_class_14(c: char) -> BidiClass {
    match u32::from(c) {
        0x1B3A | 0x1B3C | 0x1B42 | 0x1171E => BidiClass::NonspacingMark,
        0x1D6C1 | 0x1D6FB | 0x1D735 | 0x1D76F | 0x1D7A9 => BidiClass::LeftToRight,
        _ => CodePointMapData::<BidiClass>::new().get(c),
    }
}

// ---------------------------------------------------------------------------
// IDNA 2003: Python's `encodings.idna` codec and nameprep
// ---------------------------------------------------------------------------

/// Python's `host.encode("idna")` (RFC 3490 with nameprep, unassigned code
/// points allowed, no STD3 rules).
fn idna2003_encode(host: &str) -> Option<String> {
    let mut labels: Vec<&str> = host.split(DOTS).collect();
    let trailing_dot = labels.len() > 1 && labels.last().is_some_and(|l| l.is_empty());
    if trailing_dot {
        labels.pop();
    }
    let encoded = labels
        .into_iter()
        .map(idna2003_to_ascii)
        .collect::<Option<Vec<_>>>()?;
    let mut out = encoded.join(".");
    if trailing_dot {
        out.push('.');
    }
    Some(out)
}

/// `encodings.idna.ToASCII`.
fn idna2003_to_ascii(label: &str) -> Option<String> {
    let fits = |s: &str| (1..64).contains(&s.len());
    if label.is_ascii() {
        return fits(label).then(|| label.to_owned());
    }
    let prepared = nameprep(label)?;
    if prepared.is_ascii() {
        return fits(&prepared).then_some(prepared);
    }
    if prepared.starts_with("xn--") {
        return None;
    }
    punycode_label(&prepared)
}

/// `encodings.idna.nameprep` (RFC 3491), with unassigned code points allowed.
///
/// Python runs it on the Unicode 3.2 database, except for lower-casing,
/// which uses Python's own (Unicode 14) `str.lower()`. A character of
/// Unicode 3.2 is mapped with the UTS #46 mapping in its IDNA 2003
/// (transitional) form, which UTS #46 defines to agree with nameprep there;
/// a later character is only lower-cased, as Python does.
fn nameprep(label: &str) -> Option<String> {
    let prepared = nameprep_map(label);
    if prepared.chars().any(is_nameprep_prohibited) {
        return None;
    }
    // Section 6 of RFC 3454: no LCat in a string with RandALCat, which must
    // start and end it.
    if prepared.chars().any(is_rand_al_3_2) {
        if prepared.chars().any(is_l_3_2) {
            return None;
        }
        let first = prepared.chars().next().is_some_and(is_rand_al_3_2);
        let last = prepared.chars().next_back().is_some_and(is_rand_al_3_2);
        if !first || !last {
            return None;
        }
    }
    Some(prepared)
}

/// Bidirectional class R or AL in Unicode 3.2 (table D.1 of RFC 3454).
fn is_rand_al_3_2(c: char) -> bool {
    let class = CodePointMapData::<BidiClass>::new().get(c);
    is_unicode_3_2(c)
        && c != '\u{70F}'
        && (c == '\u{6DD}' || class == BidiClass::RightToLeft || class == BidiClass::ArabicLetter)
}

/// Bidirectional class L in Unicode 3.2 (table D.2 of RFC 3454).
fn is_l_3_2(c: char) -> bool {
    let cp = u32::from(c);
    is_unicode_3_2(c)
        && !matches!(
            cp,
            0xCBF | 0xCC6 | 0x1734 | 0x2132 | 0x2800..=0x28FF | 0x302E | 0x302F
        )
        && (matches!(
            cp,
            0x17B4
                | 0x17B5
                | 0x1885
                | 0x1886
                | 0x1D6C1
                | 0x1D6DB
                | 0x1D6FB
                | 0x1D715
                | 0x1D735
                | 0x1D74F
                | 0x1D76F
                | 0x1D789
                | 0x1D7A9
                | 0x1D7C3
        ) || CodePointMapData::<BidiClass>::new().get(c) == BidiClass::LeftToRight)
}

/// The mapping (tables B.1 and B.2) and normalisation steps of nameprep.
fn nameprep_map(label: &str) -> String {
    let mut mapped = String::with_capacity(label.len());
    for c in label.chars() {
        if is_nameprep_b1(c) {
            continue;
        }
        if is_unicode_3_2(c) {
            nameprep_map_3_2(c, &mut mapped);
        } else if is_known_to_python(c) {
            // Python lower-cases, then maps the result again.
            for lower in c.to_lowercase() {
                if is_unicode_3_2(lower) {
                    nameprep_map_3_2(lower, &mut mapped);
                } else {
                    mapped.push(lower);
                }
            }
        } else {
            mapped.push(c);
        }
    }
    nfkc_unicode_3_2(&mapped)
}

/// NFKC as Python computes it on its Unicode 3.2 database: characters of
/// Unicode 3.2 are decomposed, later ones are not; marks are then
/// reordered and composed with Python's (Unicode 14) combining classes and
/// compositions.
fn nfkc_unicode_3_2(s: &str) -> String {
    let nfkd = DecomposingNormalizerBorrowed::new_nfkd();
    let mut decomposed = String::with_capacity(s.len());
    let mut buf = [0u8; 4];
    for c in s.chars() {
        if is_unicode_3_2(c) {
            decomposed.push_str(&nfkd.normalize(c.encode_utf8(&mut buf)));
        } else {
            decomposed.push(c);
        }
    }
    // Left out of the composition step (which would decompose them again):
    // characters after Unicode 3.2 that have a decomposition, and marks
    // unknown to Python (combining class 0 there), which stop the
    // reordering and the composition.
    let ccc = CodePointMapData::<CanonicalCombiningClass>::new();
    let nfd = DecomposingNormalizerBorrowed::new_nfd();
    let barrier = |c: char| {
        let mut buf = [0u8; 4];
        let text = c.encode_utf8(&mut buf);
        !is_unicode_3_2(c)
            && ((!is_known_to_python(c) && ccc.get(c) != CanonicalCombiningClass::NotReordered)
                || nfd.normalize(text) != *text)
    };
    let nfc = ComposingNormalizerBorrowed::new_nfc();
    let mut out = String::with_capacity(decomposed.len());
    let mut rest = decomposed.as_str();
    loop {
        let (run, tail) = split_before(rest, barrier);
        out.push_str(&nfc.normalize(run));
        let mut chars = tail.chars();
        match chars.next() {
            Some(c) => out.push(c),
            None => break,
        }
        rest = chars.as_str();
    }
    out
}

/// Table B.2 of nameprep (case folding with NFKC) for a character of
/// Unicode 3.2.
fn nameprep_map_3_2(c: char, mapped: &mut String) {
    if ('\u{13A0}'..='\u{13F5}').contains(&c) {
        // Cherokee folds to capitals in UTS #46, Python lower-cases.
        mapped.extend(c.to_lowercase());
        return;
    }
    // Five compatibility ideographs decomposed wrongly in Unicode 3.2.
    let erratum = match u32::from(c) {
        0x2F868 => Some('\u{2136A}'),
        0x2F874 => Some('\u{5F33}'),
        0x2F91F => Some('\u{43AB}'),
        0x2F95F => Some('\u{7AAE}'),
        0x2F9BF => Some('\u{4D57}'),
        _ => None,
    };
    if let Some(e) = erratum {
        mapped.push(e);
        return;
    }
    let uts46: String = Uts46MapperBorrowed::new()
        .map_normalize(std::iter::once(c))
        .collect();
    if uts46.contains('\u{FFFD}') {
        // Disallowed by UTS #46 (controls, private use, `⒈`…): lower-case
        // and normalise; nameprep then prohibits what it must.
        let nfkc = ComposingNormalizerBorrowed::new_nfkc();
        let lower: String = c.to_lowercase().collect();
        let folded: String = nfkc
            .normalize(&lower)
            .chars()
            .flat_map(char::to_lowercase)
            .collect();
        mapped.push_str(&nfkc.normalize(&folded));
        return;
    }
    for m in uts46.chars() {
        match m {
            // The deviations of UTS #46, mapped as in IDNA 2003.
            'ß' => mapped.push_str("ss"),
            'ς' => mapped.push('σ'),
            '\u{200C}' | '\u{200D}' => {}
            m => mapped.push(m),
        }
    }
}

/// Table B.1 of RFC 3454: characters nameprep maps to nothing.
fn is_nameprep_b1(c: char) -> bool {
    matches!(
        u32::from(c),
        0xAD | 0x34F | 0x1806 | 0x180B..=0x180D | 0x200B..=0x200D | 0x2060 | 0xFE00..=0xFE0F | 0xFEFF
    )
}

/// Whether `c` is in one of the sorted, disjoint ranges.
fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    let cp = u32::from(c);
    let i = ranges.partition_point(|&(_, end)| end < cp);
    ranges.get(i).is_some_and(|&(start, _)| start <= cp)
}

/// Whether `c` is assigned in Unicode 3.2 (the database of nameprep).
fn is_unicode_3_2(c: char) -> bool {
    in_ranges(UNICODE_3_2_ASSIGNED, c)
}

/// Whether `c` is assigned in Unicode 14, the database of Python 3.11 (the
/// `idna` package fails on a character unknown to it).
fn is_known_to_python(c: char) -> bool {
    CodePointMapData::<GeneralCategory>::new().get(c) != GeneralCategory::Unassigned
        && !in_ranges(ASSIGNED_AFTER_UNICODE_14, c)
}

/// Tables C.1.2 to C.9 of RFC 3454, prohibited by nameprep.
fn is_nameprep_prohibited(c: char) -> bool {
    let cp = u32::from(c);
    matches!(
        cp,
        // C.1.2 non-ASCII spaces
        0xA0 | 0x1680 | 0x2000..=0x200B | 0x202F | 0x205F | 0x3000
        // C.2.2 non-ASCII controls
        | 0x80..=0x9F | 0x6DD | 0x70F | 0x180E | 0x200C | 0x200D | 0x2028 | 0x2029
        | 0x2060..=0x2063 | 0x206A..=0x206F | 0xFEFF | 0xFFF9..=0xFFFC | 0x1D173..=0x1D17A
        // C.3 private use
        | 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD
        // C.4 non-characters
        | 0xFDD0..=0xFDEF
        // C.6 inappropriate for plain text
        | 0xFFFD
        // C.7 inappropriate for canonical representation
        | 0x2FF0..=0x2FFB
        // C.8 change display properties
        | 0x340 | 0x341 | 0x200E | 0x200F | 0x202A..=0x202E
        // C.9 tagging characters
        | 0xE0001 | 0xE0020..=0xE007F
    ) || (cp & 0xFFFE) == 0xFFFE
}
