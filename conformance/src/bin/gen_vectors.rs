//! Writes the golden vectors and their manifest into `conformance/vectors/`.
//! Run only together with a format version bump; the conformance tests fail on any drift.

use pcll_conformance::manifest::{describe, Manifest};
use pcll_conformance::{vectors, vectors_dir};

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--fuzz-seeds") {
        return seed_fuzz_corpora();
    }
    let dir = vectors_dir();
    std::fs::create_dir_all(&dir)?;
    let mut m = Manifest {
        format_version: pcll_decoder::layout::VERSION,
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
    write_hostile(&dir.join("hostile"))
}

/// The hostile vectors: forged files written, found ones kept as committed; one manifest.
fn write_hostile(dir: &std::path::Path) -> anyhow::Result<()> {
    use pcll_conformance::hostile_vectors::{must_decode, must_reject};
    std::fs::create_dir_all(dir)?;
    let forged = must_reject()
        .into_iter()
        .map(|v| (v.name, v.origin))
        .chain(must_decode().into_iter().map(|v| (v.name, v.origin)));
    for (name, origin) in forged {
        if origin.is_generated() {
            std::fs::write(dir.join(format!("{name}.pcll")), origin.bytes())?;
        }
    }
    let m = pcll_conformance::manifest::hostile_manifest()?;
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&m)? + "\n",
    )?;
    println!(
        "hostile: {} must-reject, {} must-decode",
        m.must_reject.len(),
        m.must_decode.len()
    );
    Ok(())
}

/// `--fuzz-seeds`: seeds every fuzz target's corpus (`fuzz/corpus/<target>/golden-*`) from the
/// committed vectors, so fuzzing starts inside every codec: whole files for the container
/// targets (hostile ones included, except files over 64 KiB), each single-table rANS stream
/// with its symbol count for `rans_stream`, each `int` tensor's symbols for `roundtrip`.
fn seed_fuzz_corpora() -> anyhow::Result<()> {
    use pcll_decoder::layout::{int_stream, kmeans_parts, lossless_parts};
    use pcll_decoder::{Artifact, Codec};
    let corpus = vectors_dir().join("../../fuzz/corpus");
    let mut files = Vec::new();
    for dir in [vectors_dir(), vectors_dir().join("hostile")] {
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "pcll") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut counts = [0usize; 3];
    for p in files {
        let bytes = std::fs::read(&p)?;
        let stem = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if bytes.len() <= 64 << 10 {
            for target in ["parse", "decode", "decode_fixed", "c_api", "c_api_fixed"] {
                std::fs::write(corpus.join(target).join(format!("golden-{stem}")), &bytes)?;
            }
            counts[0] += 1;
        }
        let Ok(art) = Artifact::parse(&bytes) else {
            continue;
        };
        for t in art.tensors() {
            let payload = art.payload(&t);
            let stream = match t.codec {
                Codec::Int(p) if p.clusters == 0 => int_stream(&t, &p, payload).ok(),
                Codec::Kmeans(p) => kmeans_parts(&t, &p, payload).ok().map(|x| x.stream),
                Codec::Lossless => lossless_parts(&t, payload).ok().map(|x| x.1),
                _ => None,
            };
            let Some(stream) = stream.filter(|_| t.numel() < 1 << 20) else {
                continue;
            };
            let mut seed = (t.numel() as u32).to_le_bytes().to_vec();
            seed.extend_from_slice(&payload[payload.len() - stream.byte_len..]);
            let name = format!("golden-{stem}-{}", t.index);
            std::fs::write(corpus.join("rans_stream").join(&name), seed)?;
            counts[1] += 1;
            if let Codec::Int(_) = t.codec {
                let (rows, _) = t.rows_cols();
                let mut syms = vec![0u8; t.numel() as usize];
                let mut scales = vec![0f32; rows as usize];
                let mut scratch = vec![0u8; pcll_decoder::limits::MAX_SCRATCH_LEN];
                if art
                    .decode_int_symbols(&t, None, &mut syms, &mut scales, &mut scratch)
                    .is_err()
                {
                    continue; // a must-reject file
                }
                let mut seed = vec![t.index as u8];
                seed.extend(syms.iter().take(4096));
                std::fs::write(corpus.join("roundtrip").join(&name), seed)?;
                counts[2] += 1;
            }
        }
    }
    println!(
        "seeded {} files into the container targets, {} streams, {} symbol runs",
        counts[0], counts[1], counts[2]
    );
    Ok(())
}
