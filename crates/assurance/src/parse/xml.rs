//! A small streaming XML walker over quick-xml for the scanner formats:
//! it keeps the element path, gathers each element's own text (entities
//! resolved) and reports line numbers for errors.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::ParseError;

/// One element opening or closing.
pub enum Node<'a> {
    Open {
        path: &'a [String],
        attrs: &'a [(String, String)],
        line: u64,
    },
    Close {
        path: &'a [String],
        attrs: &'a [(String, String)],
        text: &'a str,
        line: u64,
    },
}

struct Frame {
    attrs: Vec<(String, String)>,
    text: String,
    line: u64,
}

/// Counts lines incrementally (positions only grow).
struct Lines<'b> {
    bytes: &'b [u8],
    pos: usize,
    line: u64,
}

impl Lines<'_> {
    fn at(&mut self, pos: u64) -> u64 {
        let pos = (pos as usize).min(self.bytes.len());
        if pos > self.pos {
            self.line += self.bytes[self.pos..pos]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            self.pos = pos;
        }
        self.line
    }
}

fn attrs(file: &str, line: u64, s: &BytesStart<'_>) -> Result<Vec<(String, String)>, ParseError> {
    let mut out = Vec::new();
    for a in s.attributes() {
        let a = a.map_err(|e| {
            ParseError::new(
                file,
                format!("line {line}"),
                s.name().into_inner(),
                format!("bad attribute: {e}"),
            )
        })?;
        let v = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| {
                ParseError::new(
                    file,
                    format!("line {line}"),
                    a.key.into_inner(),
                    format!("bad attribute value: {e}"),
                )
            })?;
        out.push((a.key.local_name().into_inner().to_string(), v.into_owned()));
    }
    Ok(out)
}

/// Walks the document, calling `f` on every element open and close.
/// Errors from `f` are returned as they are.
pub fn walk(
    file: &str,
    bytes: &[u8],
    mut f: impl FnMut(Node<'_>) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut r = Reader::from_reader(bytes);
    r.config_mut().check_end_names = true;
    let mut lines = Lines {
        bytes,
        pos: 0,
        line: 1,
    };
    let mut path: Vec<String> = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut seen_root = false;
    let err = |line: u64, path: &[String], reason: String| {
        ParseError::new(
            file,
            format!("line {line}"),
            path.last().map_or("document", |s| s.as_str()),
            reason,
        )
    };
    loop {
        let before = r.buffer_position();
        let ev = r.read_event();
        let line = lines.at(before);
        let ev = ev.map_err(|e| {
            let l = lines.at(r.error_position());
            err(l, &path, format!("malformed XML: {e}"))
        })?;
        match ev {
            Event::Start(s) | Event::Empty(s) if path.is_empty() && seen_root => {
                return Err(err(
                    line,
                    &path,
                    format!("a second root element <{}>", s.name().into_inner()),
                ));
            }
            Event::Start(s) => {
                seen_root = true;
                path.push(s.local_name().into_inner().to_string());
                frames.push(Frame {
                    attrs: attrs(file, line, &s)?,
                    text: String::new(),
                    line,
                });
                let fr = frames.last().expect("pushed");
                f(Node::Open {
                    path: &path,
                    attrs: &fr.attrs,
                    line,
                })?;
            }
            Event::Empty(s) => {
                seen_root = true;
                path.push(s.local_name().into_inner().to_string());
                let a = attrs(file, line, &s)?;
                f(Node::Open {
                    path: &path,
                    attrs: &a,
                    line,
                })?;
                f(Node::Close {
                    path: &path,
                    attrs: &a,
                    text: "",
                    line,
                })?;
                path.pop();
            }
            Event::End(_) => {
                let fr = frames
                    .pop()
                    .ok_or_else(|| err(line, &path, "closing tag without an opening one".into()))?;
                f(Node::Close {
                    path: &path,
                    attrs: &fr.attrs,
                    text: fr.text.trim(),
                    line: fr.line,
                })?;
                path.pop();
            }
            Event::Text(t) => {
                if let Some(fr) = frames.last_mut() {
                    fr.text.push_str(t.as_ref());
                }
            }
            Event::CData(t) => {
                if let Some(fr) = frames.last_mut() {
                    fr.text.push_str(t.as_ref());
                }
            }
            Event::GeneralRef(e) => {
                let c = if e.is_char_ref() {
                    e.resolve_char_ref().ok().flatten()
                } else {
                    match e.as_ref() {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => None,
                    }
                };
                let c =
                    c.ok_or_else(|| err(line, &path, format!("unknown entity &{};", e.as_ref())))?;
                if let Some(fr) = frames.last_mut() {
                    fr.text.push(c);
                }
            }
            Event::Eof => {
                if !path.is_empty() {
                    return Err(err(
                        line,
                        &path,
                        format!("the file ends inside <{}>", path.join("/")),
                    ));
                }
                if !seen_root {
                    return Err(ParseError::new(
                        file,
                        "line 1",
                        "document",
                        "no XML element in the file",
                    ));
                }
                return Ok(());
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
}

/// The value of attribute `name`.
pub fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Whether `path` ends with `suffix`.
pub fn ends_with(path: &[String], suffix: &[&str]) -> bool {
    path.len() >= suffix.len()
        && path[path.len() - suffix.len()..]
            .iter()
            .zip(suffix)
            .all(|(a, b)| a == b)
}
