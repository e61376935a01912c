//! Text → tokenizer and parameter-golf token shards.
//!
//! The tokenizer is a SentencePiece-style BPE built with Hugging Face `tokenizers`: spaces
//! become `▁` (prepended once at the start of a text), merges are learned on the training
//! text, and every byte has a `<0xNN>` fallback token, so any text encodes and decodes back
//! exactly. Its ids are `<unk>` (0), the learned pieces, then the 256 byte tokens; the vocab
//! is at most the size asked for. The byte tables for bits per byte come from the same file
//! ([`pcll_runtime::text::TextCodec::byte_tables`]).
//!
//! The text (inputs concatenated in the order given) is split at a line boundary: the last
//! `val_fraction` of its bytes is the validation split. Each split is written as shards of at
//! most `shard_tokens` tokens: `train_000000.bin`, …, `val_000000.bin`, ….

use pcll_runtime::shard::write_shard;
use pcll_runtime::text::TextCodec;
use std::fmt;
use std::path::{Path, PathBuf};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::sequence::Sequence;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    TokenizerBuilder,
};

/// The unknown token (never produced: byte fallback covers everything).
pub const UNK: &str = "<unk>";
/// Byte tokens every tokenizer carries.
pub const BYTE_TOKENS: usize = 256;

/// How to tokenize.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Vocabulary size of the BPE tokenizer; `None` for raw bytes (ids 0..256).
    pub vocab: Option<usize>,
    /// Share of the text (by bytes, cut at a line boundary) kept for validation.
    pub val_fraction: f64,
    /// Tokens per shard at most.
    pub shard_tokens: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            vocab: Some(1024),
            val_fraction: 0.1,
            shard_tokens: 100_000_000,
        }
    }
}

/// What went wrong.
#[derive(Debug)]
pub enum TokenizeError {
    /// The vocabulary cannot hold `<unk>`, the byte tokens and one merge, or exceeds u16.
    BadVocab(usize),
    BadFraction(f64),
    /// The tokenizer library failed.
    Tokenizer(String),
    /// Reading input or writing output failed.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Runtime(pcll_runtime::RuntimeError),
    /// No text in the inputs, or too little for both splits.
    TooLittleText {
        bytes: usize,
    },
}

impl fmt::Display for TokenizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizeError::BadVocab(v) => write!(
                f,
                "vocabulary {v}: must be between {} and 65536",
                BYTE_TOKENS + 2
            ),
            TokenizeError::BadFraction(x) => write!(f, "validation fraction {x} is not in (0, 1)"),
            TokenizeError::Tokenizer(e) => write!(f, "tokenizer: {e}"),
            TokenizeError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            TokenizeError::Runtime(e) => write!(f, "{e}"),
            TokenizeError::TooLittleText { bytes } => {
                write!(
                    f,
                    "{bytes} bytes of text is too little for a train and a val split"
                )
            }
        }
    }
}

impl std::error::Error for TokenizeError {}

impl From<pcll_runtime::RuntimeError> for TokenizeError {
    fn from(e: pcll_runtime::RuntimeError) -> Self {
        TokenizeError::Runtime(e)
    }
}

fn tk(e: impl fmt::Display) -> TokenizeError {
    TokenizeError::Tokenizer(e.to_string())
}

/// Trains the BPE tokenizer on `texts` (the result holds at most `vocab` ids).
pub fn train_bpe(texts: &[&str], vocab: usize) -> Result<TextCodec, TokenizeError> {
    if !(BYTE_TOKENS + 2..=65_536).contains(&vocab) {
        return Err(TokenizeError::BadVocab(vocab));
    }
    let model = BPE::builder()
        .unk_token(UNK.into())
        .byte_fallback(true)
        .build()
        .map_err(tk)?;
    let metaspace = Metaspace::new('\u{2581}', PrependScheme::First, true);
    let mut tokenizer = TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::default()
    .with_model(model)
    .with_pre_tokenizer(Some(PreTokenizerWrapper::Metaspace(metaspace.clone())))
    .with_decoder(Some(DecoderWrapper::Sequence(Sequence::new(vec![
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Metaspace(metaspace),
    ]))))
    .build()
    .map_err(tk)?;
    // Learned pieces get what the byte tokens leave; characters beyond the 128 most common
    // are left to byte fallback.
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab - BYTE_TOKENS)
        .min_frequency(2)
        .limit_alphabet(128)
        .special_tokens(vec![AddedToken::from(UNK, true)])
        .show_progress(false)
        .build();
    tokenizer.train(&mut trainer, texts.iter()).map_err(tk)?;
    // Append the byte tokens after the learned vocabulary.
    let json = tokenizer.to_string(false).map_err(tk)?;
    let mut v: serde_json::Value = serde_json::from_str(&json).map_err(tk)?;
    let Some(map) = v
        .pointer_mut("/model/vocab")
        .and_then(|m| m.as_object_mut())
    else {
        return Err(tk("trained tokenizer has no model.vocab"));
    };
    let mut next = map.len() as u64;
    for b in 0..=255u8 {
        let piece = format!("<0x{b:02X}>");
        if !map.contains_key(&piece) {
            map.insert(piece, next.into());
            next += 1;
        }
    }
    TextCodec::from_json(&v.to_string()).map_err(Into::into)
}

/// The position just after the line break nearest below `at` (or `at` itself if none).
fn line_cut(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text[..at].rfind('\n').map_or(at, |i| i + 1)
}

/// What [`tokenize`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub vocab: usize,
    pub train_tokens: usize,
    pub val_tokens: usize,
    pub train_bytes: usize,
    pub val_bytes: usize,
    pub files: Vec<PathBuf>,
}

/// Tokenizes the text of `inputs` into `out`: `tokenizer.json` (BPE only) and the shards.
pub fn tokenize(inputs: &[PathBuf], out: &Path, opts: &Options) -> Result<Summary, TokenizeError> {
    if !(opts.val_fraction > 0.0 && opts.val_fraction < 1.0) {
        return Err(TokenizeError::BadFraction(opts.val_fraction));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TokenizeError::Io { path, source }
    };
    let mut text = String::new();
    for p in inputs {
        let t = std::fs::read(p).map_err(io(p))?;
        text.push_str(&String::from_utf8_lossy(&t));
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    let cut = line_cut(
        &text,
        ((1.0 - opts.val_fraction) * text.len() as f64) as usize,
    );
    let (train, val) = text.split_at(cut);
    if train.trim().is_empty() || val.trim().is_empty() {
        return Err(TokenizeError::TooLittleText { bytes: text.len() });
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let codec = match opts.vocab {
        None => TextCodec::Bytes,
        Some(v) => train_bpe(&[train], v)?,
    };
    let mut files = Vec::new();
    if let Some(json) = codec.json() {
        let p = out.join("tokenizer.json");
        std::fs::write(&p, json).map_err(io(&p))?;
        files.push(p);
    }
    let mut counts = [0usize; 2];
    for (split, (name, part)) in [("train", train), ("val", val)].into_iter().enumerate() {
        let ids: Vec<u16> = codec.encode(part)?.into_iter().map(|t| t as u16).collect();
        counts[split] = ids.len();
        for (i, chunk) in ids.chunks(opts.shard_tokens.max(1)).enumerate() {
            let p = out.join(format!("{name}_{i:06}.bin"));
            write_shard(&p, chunk)?;
            files.push(p);
        }
    }
    Ok(Summary {
        vocab: codec_vocab(&codec),
        train_tokens: counts[0],
        val_tokens: counts[1],
        train_bytes: train.len(),
        val_bytes: val.len(),
        files,
    })
}

/// Ids the codec can produce.
pub fn codec_vocab(codec: &TextCodec) -> usize {
    match codec {
        TextCodec::Bytes => BYTE_TOKENS,
        TextCodec::Json { tokenizer, .. } => tokenizer.get_vocab_size(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcll_runtime::shard::read_shard;

    fn sample() -> String {
        let para = "The quick brown fox jumps over the lazy dog. Rust's ownership rules make \
                    memory safety checkable at compile time: each value has one owner, and \
                    borrows may not outlive it.\nfn main() { println!(\"héllo, wörld\"); }\n";
        para.repeat(40)
    }

    #[test]
    fn bpe_round_trips_and_counts_bytes() {
        let text = sample();
        let codec = train_bpe(&[&text], 400).expect("trains");
        let vocab = codec_vocab(&codec);
        assert!(vocab <= 400 && vocab > 300, "{vocab}");
        let probe = "Ownership: borrows ¬ outlive ✓ values\n";
        let ids = codec.encode(probe).expect("encodes");
        assert!(ids.iter().all(|&i| (i as usize) < vocab));
        assert_eq!(codec.decode(&ids).expect("decodes"), probe);
        // Bits-per-byte tables count the text's bytes exactly, plus the one space that the
        // tokenizer prepends to a text.
        let t = codec.byte_tables(vocab).expect("tables");
        let ids = codec.encode(&text).expect("encodes");
        let mut bytes = u64::from(t.base_bytes[ids[0] as usize])
            + u64::from(t.has_leading_space[ids[0] as usize]);
        for w in ids.windows(2) {
            bytes += t.target_bytes(w[0], w[1]);
        }
        assert_eq!(bytes, text.len() as u64 + 1);
        // Deterministic.
        let again = train_bpe(&[&text], 400).expect("trains");
        assert_eq!(codec.json(), again.json());
    }

    #[test]
    fn writes_shards_and_tokenizer() {
        let dir = std::env::temp_dir().join(format!("pcll-tokenize-{}", std::process::id()));
        let src = dir.join("in.txt");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(&src, sample()).expect("write");
        let out = dir.join("out");
        let s = tokenize(
            std::slice::from_ref(&src),
            &out,
            &Options {
                vocab: Some(400),
                val_fraction: 0.2,
                shard_tokens: 500,
            },
        )
        .expect("tokenizes");
        assert!(s.train_tokens > 500 && s.val_tokens > 0);
        assert!(s.files.len() > 3, "{:?}", s.files);
        let json = std::fs::read_to_string(out.join("tokenizer.json")).expect("tokenizer");
        let codec = TextCodec::from_json(&json).expect("parses");
        let mut val = Vec::new();
        for f in s
            .files
            .iter()
            .filter(|f| f.to_string_lossy().contains("val_"))
        {
            val.extend(read_shard(f).expect("shard").into_iter().map(u32::from));
        }
        assert_eq!(val.len(), s.val_tokens);
        let text = sample();
        let decoded = codec.decode(&val).expect("decodes");
        assert!(text.ends_with(&decoded), "{decoded:?}");
        assert_eq!(decoded.len(), s.val_bytes);

        let b = tokenize(
            &[src],
            &dir.join("bytes"),
            &Options {
                vocab: None,
                ..Options::default()
            },
        )
        .expect("bytes");
        assert_eq!(b.train_tokens + b.val_tokens, text.len());
        assert!(matches!(
            tokenize(&[], &out, &Options::default()),
            Err(TokenizeError::TooLittleText { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
