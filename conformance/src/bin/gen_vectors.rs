//! Writes the golden vectors and their manifest into `conformance/vectors/`.
//! Run only together with a format version bump; the conformance tests fail on any drift.

use pcll_conformance::manifest::{describe, Manifest};
use pcll_conformance::{vectors, vectors_dir};

fn main() -> anyhow::Result<()> {
    let dir = vectors_dir();
    std::fs::create_dir_all(&dir)?;
    let mut m = Manifest {
        format_version: pcll_decoder::header::VERSION,
        vectors: Vec::new(),
    };
    for v in vectors::all() {
        let bytes = v.build()?;
        std::fs::write(dir.join(format!("{}.pcll", v.name)), &bytes)?;
        std::fs::write(
            dir.join(format!("{}.source.safetensors", v.name)),
            v.source.to_safetensors()?,
        )?;
        m.vectors.push(describe(v.name, v.what, &bytes)?);
        println!("{:<12} {:>7} bytes  {}", v.name, bytes.len(), v.what);
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&m)? + "\n",
    )?;
    Ok(())
}
