//! `--calib-cache FILE`: calibration Grams and budget-probe results saved for the next pack.
//!
//! Packing one model at several budgets redoes the same work each time: the calibration
//! forward pass that accumulates every linear layer's input Gram (the GPTQ Hessians), the
//! float model's loss on the probe slice, and two probe passes per tensor. The cache keeps
//! all three in one safetensors file:
//!
//! - tensors `gram.<input>`: each Hessian as `F64 [dim, dim]`, bit for bit, so a cached
//!   calibration packs to exactly the bytes a fresh one does (and `verify --calib`, which
//!   recomputes it, still reproduces the artifact);
//! - `__metadata__`: the key (see below), each Gram's sample count, which weight reads which
//!   input, the base loss and the probe results (f64 bits in hex, exact).
//!
//! The key is the SHA-256 of the source tensors (names, dtypes, shapes, bytes), the SHA-256 of
//! the calibration tokens actually read (Hessian part and probe slice), and the settings
//! (token counts, window length, the model configuration the forward pass used). A file whose
//! key differs in any part is refused with an error naming that part; it is never silently
//! used. Probe results are keyed by the SHA-256 of the probed tensor's name and weights, so
//! one cache serves any scale rule, GPTQ setting or probe rate: a probe whose weights differ
//! is simply measured and added.

use crate::calibrate::{CalibSpec, CalibTokens};
use crate::error::{io, PipelineError};
use pcll_formats::quant::gptq::{Hessian, Hessians};
use pcll_formats::SourceModel;
use pcll_runtime::config::Config;
use safetensors::tensor::{Dtype as StDtype, TensorView};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Version of the cache layout, part of the key.
const VERSION: &str = "1";

/// What a cache was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// SHA-256 of the source model's tensors.
    pub model: String,
    /// SHA-256 of the calibration tokens (Hessian part, then probe slice).
    pub data: String,
    /// Token counts, window length, model configuration and layout version.
    pub settings: String,
}

impl CacheKey {
    pub fn new(model: &SourceModel, cfg: &Config, spec: &CalibSpec, tokens: &CalibTokens) -> Self {
        let mut h = Sha256::new();
        for t in &model.tensors {
            h.update((t.name.len() as u64).to_le_bytes());
            h.update(t.name.as_bytes());
            h.update(format!("{:?}", t.dtype).as_bytes());
            h.update((t.shape.len() as u64).to_le_bytes());
            for d in &t.shape {
                h.update(d.to_le_bytes());
            }
            h.update((t.data.len() as u64).to_le_bytes());
            h.update(&t.data);
        }
        let model = hex(&h.finalize());
        let mut h = Sha256::new();
        h.update((tokens.hessian.len() as u64).to_le_bytes());
        for t in tokens.hessian.iter().chain(&tokens.probe) {
            h.update(t.to_le_bytes());
        }
        let data = hex(&h.finalize());
        let settings = format!("v{VERSION},{},config={cfg:?}", spec.describe());
        CacheKey {
            model,
            data,
            settings,
        }
    }

    /// The first part in which `self` (the file) differs from `now`, described.
    fn mismatch(&self, now: &CacheKey) -> Option<String> {
        let short = |s: &str| s.chars().take(12).collect::<String>();
        if self.model != now.model {
            Some(format!(
                "another model (weights sha256 {}…, this one {}…)",
                short(&self.model),
                short(&now.model)
            ))
        } else if self.data != now.data {
            Some(format!(
                "other calibration tokens (sha256 {}…, these {}…)",
                short(&self.data),
                short(&now.data)
            ))
        } else if self.settings != now.settings {
            Some(format!(
                "other settings ({}; now {})",
                self.settings, now.settings
            ))
        } else {
            None
        }
    }
}

/// How much of a cache was reused, for the one-line report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUse {
    pub grams_reused: bool,
    pub base_loss_reused: bool,
    pub probes_reused: usize,
    pub probes_measured: usize,
}

/// A calibration cache file, opened for one model, token set and settings.
#[derive(Debug)]
pub struct CalibCache {
    path: PathBuf,
    key: CacheKey,
    hessians: Option<Hessians>,
    base_loss: Option<f64>,
    /// Probe digest (hex) → loss increase.
    probes: BTreeMap<String, f64>,
    changed: bool,
    pub used: CacheUse,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest a probe of the tensors `replaced` (name, weights; in name order) is kept under
/// ([`CalibCache::probe`]). One tensor hashes as it always has (name length, name, weights),
/// so older caches' probes are found; a set of several starts with a length no name has, and
/// counts each tensor's weights, so no set shares a member's digest.
pub fn probe_key<'a>(
    replaced: impl IntoIterator<Item = (&'a str, &'a [f32]), IntoIter: ExactSizeIterator>,
) -> String {
    let replaced = replaced.into_iter();
    let mut h = Sha256::new();
    let set = replaced.len() != 1;
    if set {
        h.update(u64::MAX.to_le_bytes());
    }
    for (name, weights) in replaced {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        if set {
            h.update((weights.len() as u64).to_le_bytes());
        }
        for w in weights {
            h.update(w.to_bits().to_le_bytes());
        }
    }
    hex(&h.finalize())
}

fn f64_hex(v: f64) -> String {
    format!("{:016x}", v.to_bits())
}

fn parse_f64_hex(s: &str) -> Option<f64> {
    u64::from_str_radix(s, 16).ok().map(f64::from_bits)
}

impl CalibCache {
    /// Opens `path` for `key`: an absent file is an empty cache (written by
    /// [`CalibCache::save`]); a file made for another key is an error that says which part
    /// differs; a file that is not a calibration cache is an error.
    pub fn open(path: &Path, key: CacheKey) -> Result<CalibCache, PipelineError> {
        let mut cache = CalibCache {
            path: path.to_path_buf(),
            key,
            hessians: None,
            base_loss: None,
            probes: BTreeMap::new(),
            changed: false,
            used: CacheUse::default(),
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cache),
            Err(e) => return Err(io(path)(e)),
        };
        let bad = |reason: String| PipelineError::CalibCache {
            path: path.to_path_buf(),
            reason,
        };
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a calibration cache ({e})")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a calibration cache ({e})")))?;
        let meta: HashMap<String, String> = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            meta.get(k)
                .cloned()
                .ok_or_else(|| bad(format!("not a calibration cache (no `{k}`)")))
        };
        if get("pcll.calib_cache")? != VERSION {
            return Err(bad("a calibration cache of another version".into()));
        }
        let stored = CacheKey {
            model: get("model")?,
            data: get("data")?,
            settings: get("settings")?,
        };
        if let Some(why) = stored.mismatch(&cache.key) {
            return Err(bad(format!(
                "made for {why}; refusing it (delete the file or name another one)"
            )));
        }
        let readers: BTreeMap<String, String> =
            serde_json::from_str(&get("readers")?).map_err(|e| bad(format!("readers: {e}")))?;
        let mut inputs = BTreeMap::new();
        for (name, view) in st.tensors() {
            let Some(input) = name.strip_prefix("gram.") else {
                continue;
            };
            let shape = view.shape();
            let dim = shape.first().copied().unwrap_or(0);
            if view.dtype() != StDtype::F64 || shape != [dim, dim] {
                return Err(bad(format!("{name}: not an F64 square matrix")));
            }
            let matrix = view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect();
            let samples = get(&format!("samples.{input}"))?
                .parse()
                .map_err(|e| bad(format!("samples.{input}: {e}")))?;
            inputs.insert(
                input.to_string(),
                Hessian {
                    dim,
                    samples,
                    matrix,
                },
            );
        }
        if !inputs.is_empty() {
            cache.hessians = Some(Hessians { inputs, readers });
        }
        cache.base_loss = meta.get("base_loss").and_then(|s| parse_f64_hex(s));
        if let Some(p) = meta.get("probes") {
            let raw: BTreeMap<String, String> =
                serde_json::from_str(p).map_err(|e| bad(format!("probes: {e}")))?;
            for (k, v) in raw {
                let v = parse_f64_hex(&v).ok_or_else(|| bad(format!("probe {k}: `{v}`")))?;
                cache.probes.insert(k, v);
            }
        }
        Ok(cache)
    }

    /// The cached Grams (moved out: the caller holds the only copy and hands it back to
    /// [`CalibCache::save`]), or `compute()`'s, which `save` then writes.
    pub fn hessians(
        &mut self,
        compute: impl FnOnce() -> Result<Hessians, PipelineError>,
    ) -> Result<Hessians, PipelineError> {
        if let Some(h) = self.hessians.take() {
            self.used.grams_reused = true;
            return Ok(h);
        }
        self.changed = true;
        compute()
    }

    /// The cached float loss on the probe slice, or `compute()`'s.
    pub fn base_loss(
        &mut self,
        compute: impl FnOnce() -> Result<f64, PipelineError>,
    ) -> Result<f64, PipelineError> {
        if let Some(l) = self.base_loss {
            self.used.base_loss_reused = true;
            return Ok(l);
        }
        let l = compute()?;
        self.base_loss = Some(l);
        self.changed = true;
        Ok(l)
    }

    /// The cached loss increase of a probe, under its [`probe_key`], or `compute()`'s.
    pub fn probe(
        &mut self,
        k: String,
        compute: impl FnOnce() -> Result<f64, PipelineError>,
    ) -> Result<f64, PipelineError> {
        if let Some(&d) = self.probes.get(&k) {
            self.used.probes_reused += 1;
            return Ok(d);
        }
        let d = compute()?;
        self.probes.insert(k, d);
        self.used.probes_measured += 1;
        self.changed = true;
        Ok(d)
    }

    /// Writes the cache with `hessians` (what [`CalibCache::hessians`] returned),
    /// atomically (a temporary file renamed), if anything was added.
    pub fn save(&mut self, hessians: &Hessians) -> Result<(), PipelineError> {
        if !self.changed {
            return Ok(());
        }
        let mut meta = HashMap::new();
        meta.insert("pcll.calib_cache".to_string(), VERSION.to_string());
        meta.insert("model".into(), self.key.model.clone());
        meta.insert("data".into(), self.key.data.clone());
        meta.insert("settings".into(), self.key.settings.clone());
        let mut blobs: Vec<(String, Vec<u8>, usize)> = Vec::new();
        for (input, g) in &hessians.inputs {
            meta.insert(format!("samples.{input}"), g.samples.to_string());
            let bytes = g.matrix.iter().flat_map(|x| x.to_le_bytes()).collect();
            blobs.push((format!("gram.{input}"), bytes, g.dim));
        }
        meta.insert(
            "readers".into(),
            serde_json::to_string(&hessians.readers).unwrap_or_default(),
        );
        if let Some(l) = self.base_loss {
            meta.insert("base_loss".into(), f64_hex(l));
        }
        let probes: BTreeMap<&String, String> =
            self.probes.iter().map(|(k, v)| (k, f64_hex(*v))).collect();
        meta.insert(
            "probes".into(),
            serde_json::to_string(&probes).unwrap_or_default(),
        );
        let bad = |reason: String| PipelineError::CalibCache {
            path: self.path.clone(),
            reason,
        };
        let views = blobs
            .iter()
            .map(|(name, bytes, dim)| {
                TensorView::new(StDtype::F64, vec![*dim, *dim], bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| bad(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = safetensors::serialize(views, &Some(meta)).map_err(|e| bad(e.to_string()))?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, &out).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        self.changed = false;
        Ok(())
    }

    /// `calibration cache F: Grams reused, 40 of 40 probes reused` and the like.
    pub fn describe(&self) -> String {
        let u = &self.used;
        let grams = if u.grams_reused {
            "Grams reused"
        } else {
            "Grams computed and saved"
        };
        let probes = u.probes_reused + u.probes_measured;
        let probes = if probes == 0 {
            String::new()
        } else {
            format!(", {} of {probes} probes reused", u.probes_reused)
        };
        format!("calibration cache {}: {grams}{probes}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::probe_key;
    use sha2::{Digest, Sha256};
    use std::collections::BTreeMap;

    fn set(items: &[(&str, &[f32])]) -> BTreeMap<String, Vec<f32>> {
        items
            .iter()
            .map(|(n, w)| (n.to_string(), w.to_vec()))
            .collect()
    }

    fn key_of(set: &BTreeMap<String, Vec<f32>>) -> String {
        probe_key(set.iter().map(|(n, w)| (n.as_str(), w.as_slice())))
    }

    #[test]
    fn a_probe_of_one_tensor_keeps_its_digest_and_a_set_has_its_own() {
        // The layout caches written before sets were probed: name length, name, weights.
        let mut h = Sha256::new();
        h.update(3u64.to_le_bytes());
        h.update(b"a.w");
        for w in [1.0f32, -2.5] {
            h.update(w.to_bits().to_le_bytes());
        }
        let old = super::hex(&h.finalize());
        let one = set(&[("a.w", &[1.0, -2.5])]);
        assert_eq!(key_of(&one), old);
        assert_eq!(probe_key([("a.w", &[1.0f32, -2.5][..])]), old);

        let both = set(&[("a.w", &[1.0, -2.5]), ("b.w", &[0.5])]);
        let keys = [
            key_of(&one),
            key_of(&set(&[("b.w", &[0.5])])),
            key_of(&both),
            // The same weights split differently between the two tensors.
            key_of(&set(&[("a.w", &[1.0]), ("b.w", &[-2.5, 0.5])])),
            key_of(&set(&[("a.w", &[1.0, -2.5]), ("b.w", &[0.25])])),
            key_of(&BTreeMap::new()),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Whatever order the set was built in.
        let mut reversed = BTreeMap::new();
        reversed.insert("b.w".to_string(), vec![0.5]);
        reversed.insert("a.w".to_string(), vec![1.0, -2.5]);
        assert_eq!(key_of(&reversed), key_of(&both));
    }
}
