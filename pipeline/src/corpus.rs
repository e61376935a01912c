//! The bundled corpus slice (`trainer/data/corpus/`, 708 kB of the Rust project's books,
//! MIT/Apache-2.0, notice in its README), compiled into the binary so `pcll demo` runs from
//! anywhere without fetching anything.

use std::path::{Path, PathBuf};

/// The bundled books: file name and text.
pub const BOOKS: [(&str, &str); 3] = [
    (
        "rust-by-example.txt",
        include_str!("../../trainer/data/corpus/rust-by-example.txt"),
    ),
    (
        "edition-guide.txt",
        include_str!("../../trainer/data/corpus/edition-guide.txt"),
    ),
    (
        "embedded-book.txt",
        include_str!("../../trainer/data/corpus/embedded-book.txt"),
    ),
];

/// The license notice that travels with the text.
pub const NOTICE: &str = include_str!("../../trainer/data/corpus/README.md");

/// Writes the books (and the notice) into `dir`; returns the text files in order.
pub fn write_to(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("README.md"), NOTICE)?;
    BOOKS
        .iter()
        .map(|(name, text)| {
            let p = dir.join(name);
            std::fs::write(&p, text)?;
            Ok(p)
        })
        .collect()
}
