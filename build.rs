//! Compresses the status page's files (src/ops/page) into OUT_DIR: the binary carries them
//! gzipped, a quarter of their size on a gateway's flash, and sends them so to browsers.

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

const PAGE_FILES: [&str; 3] = ["index.html", "status.js", "i18n.js"];

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo sets no OUT_DIR")?);
    for name in PAGE_FILES {
        let source = Path::new("src/ops/page").join(name);
        println!("cargo:rerun-if-changed={}", source.display());
        let text =
            std::fs::read(&source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
        let mut gzip = GzEncoder::new(Vec::new(), Compression::best());
        gzip.write_all(&text)?;
        std::fs::write(out.join(format!("{name}.gz")), gzip.finish()?)?;
    }
    Ok(())
}
