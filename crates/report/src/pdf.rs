//! Typst as a library: a minimal in-memory `World` (the document, its
//! images, the fonts bundled with typst-assets), compiled to a paged
//! document and exported as a tagged PDF with the fonts embedded.

use std::collections::HashMap;
use std::sync::OnceLock;

use typst::diag::{FileError, FileResult};
use typst::foundations::{Bytes, Datetime};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};
use typst_layout::PagedDocument;

use crate::ReportError;

struct Fonts {
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
}

fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| {
        let fonts: Vec<Font> = typst_assets::fonts()
            .flat_map(|data| Font::iter(Bytes::new(data)))
            .collect();
        Fonts {
            book: LazyHash::new(FontBook::from_fonts(&fonts)),
            fonts,
        }
    })
}

fn library() -> &'static LazyHash<Library> {
    static LIB: OnceLock<LazyHash<Library>> = OnceLock::new();
    LIB.get_or_init(|| LazyHash::new(Library::default()))
}

fn file_id(path: &str) -> FileId {
    RootedPath::new(
        VirtualRoot::Project,
        VirtualPath::new(path).expect("valid virtual path"),
    )
    .intern()
}

struct ReportWorld {
    main: Source,
    files: HashMap<FileId, Bytes>,
    today: Option<Datetime>,
}

impl World for ReportWorld {
    fn library(&self) -> &LazyHash<Library> {
        library()
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &fonts().book
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            Err(FileError::NotFound(std::path::PathBuf::from(format!(
                "{id:?}"
            ))))
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        self.files
            .get(&id)
            .cloned()
            .ok_or_else(|| FileError::NotFound(std::path::PathBuf::from(format!("{id:?}"))))
    }

    fn font(&self, index: usize) -> Option<Font> {
        fonts().fonts.get(index).cloned()
    }

    fn today(&self, _offset: Option<typst::foundations::Duration>) -> Option<Datetime> {
        self.today
    }
}

/// Typesets `markup` (with `files` available by name) into PDF bytes.
pub fn render(
    doc: &str,
    markup: &str,
    files: &[(&str, Vec<u8>)],
    date: &str,
) -> Result<Vec<u8>, ReportError> {
    let err = |message: String| ReportError::Typeset {
        doc: doc.to_string(),
        message,
    };
    let main = Source::new(file_id("/main.typ"), markup.to_string());
    let today = {
        let mut p = date.split('-').map(|x| x.parse::<u32>().ok());
        match (p.next().flatten(), p.next().flatten(), p.next().flatten()) {
            (Some(y), Some(m), Some(d)) => Datetime::from_ymd(y as i32, m as u8, d as u8),
            _ => None,
        }
    };
    let world = ReportWorld {
        main,
        files: files
            .iter()
            .map(|(name, bytes)| (file_id(&format!("/{name}")), Bytes::new(bytes.clone())))
            .collect(),
        today,
    };
    let warned = typst::compile::<PagedDocument>(&world);
    let document = warned.output.map_err(|diags| {
        err(diags
            .iter()
            .map(|d| d.message.to_string())
            .collect::<Vec<_>>()
            .join("; "))
    })?;
    let options = typst_pdf::PdfOptions {
        ident: typst::foundations::Smart::Custom(doc.to_string()),
        timestamp: today.map(typst_pdf::Timestamp::new_utc),
        ..typst_pdf::PdfOptions::default()
    };
    typst_pdf::pdf(&document, &options).map_err(|diags| {
        err(diags
            .iter()
            .map(|d| d.message.to_string())
            .collect::<Vec<_>>()
            .join("; "))
    })
}
