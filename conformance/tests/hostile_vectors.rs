//! The hostile vectors (`vectors/hostile/`): the committed files are what the definitions
//! build, the manifest is what the decoder gives, every must-reject file is refused by the
//! rule it names and no other, and every bomb decodes, through sinks, to the manifest's hashes.

use pcll_conformance::hostile_vectors::{must_decode, must_reject, Origin};
use pcll_conformance::manifest::{hostile_manifest, HostileManifest};
use pcll_conformance::vectors_dir;
use pcll_decoder::error::TableError;
use pcll_decoder::{Artifact, Error};

fn dir() -> std::path::PathBuf {
    vectors_dir().join("hostile")
}

fn committed(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{name}.pcll"))).expect("hostile vector file")
}

#[test]
fn committed_files_and_manifest_match_the_definitions() {
    for (name, origin) in must_reject()
        .iter()
        .map(|v| (v.name, v.origin))
        .chain(must_decode().iter().map(|v| (v.name, v.origin)))
    {
        assert_eq!(committed(name), origin.bytes(), "{name}: file drifted");
    }
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("manifest");
    let m: HostileManifest = serde_json::from_str(&text).expect("manifest parses");
    assert_eq!(m, hostile_manifest().expect("describes"));
}

#[test]
fn each_must_reject_file_is_refused_by_its_rule() {
    assert!(must_reject().len() >= 45);
    for v in must_reject() {
        let b = v.origin.bytes();
        let got = pcll_conformance::hostile::decode_everything(&b);
        let e = format!("{got:?}");
        assert!(got.is_err(), "{}: accepted", v.name);
        assert!(e.contains(v.error), "{}: {e}, expected {}", v.name, v.error);
    }
}

#[test]
fn dimension_vectors_break_only_the_dimension_rules() {
    for v in must_reject().into_iter().filter(|v| v.section == "§4, §8") {
        let b = v.origin.bytes();
        let got = Artifact::parse(&b);
        let ok = matches!(
            got,
            Err(Error::Table(
                TableError::DimTooLarge { .. } | TableError::TooManyElements { .. }
            ))
        );
        assert!(ok, "{}: {got:?}", v.name);
    }
    // Only that rule: the same entries with every dimension set to 0 (a tensor of no rows,
    // which is what the wrapped sizes made them look like) open and decode.
    for v in must_reject().into_iter().filter(|v| v.section == "§4, §8") {
        let Origin::Forged(_) = v.origin else {
            continue;
        };
        let mut b = v.origin.bytes();
        let map = pcll_conformance::hostile::ChecksumMap::of_lenient(&b);
        map.zero_dims(&mut b);
        map.refresh(&mut b);
        let decoded = pcll_conformance::hostile::decode_everything(&b);
        assert!(decoded.is_ok(), "{} with zero dims: {decoded:?}", v.name);
    }
}

#[test]
fn the_reported_hang_is_rejected_at_once() {
    let b = committed("found-int-rows-2p63-cols-0");
    assert!(matches!(
        Artifact::parse(&b),
        Err(Error::Table(TableError::DimTooLarge {
            index: 0,
            axis: 0,
            got: 0x8000_0000_0000_0000,
            max: 0x8000_0000,
        }))
    ));
}

#[test]
fn bombs_verify_in_the_decoders_scratch() {
    for v in must_decode() {
        let b = v.origin.bytes();
        let art = Artifact::parse(&b).expect("a bomb is a valid file");
        let checks = pcll_formats::unpack::verify_decodes(&art, |_, _| {}).expect("decodes");
        let t = art.tensor(0).unwrap();
        assert_eq!(checks[0].elements, t.numel(), "{}", v.name);
        assert_eq!(checks[0].non_finite, 0);
        // A memory limit below the reconstruction refuses to materialize it, naming it.
        let e = pcll_formats::unpack::decode_tensor(&art, &t, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("--max-memory"), "{e}");
    }
}
