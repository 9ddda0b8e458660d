//! Byte and text helpers that the container sniffing and both parsers
//! share: skipping a byte-order mark and blanks, the line and column of a
//! byte offset, and invalid UTF-8 described where it is (inside XML, with
//! the path of the elements open there).

use quick_xml::Reader;
use quick_xml::events::Event;

pub(super) fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data)
}

pub(super) fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0)
}

pub(super) fn skip_blank(data: &[u8]) -> &[u8] {
    let n = data.iter().take_while(|&&b| is_blank(b)).count();
    &data[n..]
}

/// 1-based line and column (in characters) of byte offset `pos`.
pub(super) fn line_col(src: &[u8], pos: u64) -> (usize, usize) {
    let pos = usize::try_from(pos).unwrap_or(usize::MAX).min(src.len());
    let before = &src[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |n| n + 1);
    let col = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, col)
}

/// Describes invalid UTF-8 at `e` in `data`; `xml` adds the element path.
pub(super) fn utf8_error(data: &[u8], e: std::str::Utf8Error, xml: bool) -> String {
    let off = e.valid_up_to();
    let (line, col) = line_col(data, off as u64);
    let byte = data.get(off).copied().unwrap_or(0);
    let what = format!("invalid UTF-8 (byte 0x{byte:02X}) at line {line}, column {col}");
    let inside = if xml {
        std::str::from_utf8(&data[..off])
            .map(open_elements)
            .unwrap_or_default()
    } else {
        String::new()
    };
    if inside.is_empty() {
        what
    } else {
        format!("{inside}: {what}")
    }
}

/// The path of the elements still open at the end of `prefix`.
pub(super) fn open_elements(prefix: &str) -> String {
    let mut r = Reader::from_str(prefix);
    r.config_mut().check_end_names = false;
    let mut stack: Vec<String> = Vec::new();
    let mut records = 0;
    while let Ok(ev) = r.read_event() {
        match ev {
            Event::Start(s) => {
                let name = s.local_name().into_inner().to_owned();
                if stack.len() == 1 && name == "record" {
                    records += 1;
                    stack.push(format!("record[{records}]"));
                } else {
                    stack.push(name);
                }
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    stack.join("/")
}
