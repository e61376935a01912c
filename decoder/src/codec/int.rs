//! Codec `int` (FORMAT.md §5.2): symmetric per-row scalar quantization. The payload is `rows`
//! scales (f16, f32, or coded as §5.8 describes) followed by one rANS stream of `rows × cols` symbols `s = q + qmax`;
//! each weight reconstructs as `(s − qmax) as f32 × scale_f32` in one f32 multiply. With
//! histogram clusters (v2, §5.2.1) the stream is a context stream: each row's cluster id
//! (table 0) precedes its symbols, which use table `1 + id`. With prototype rows (v4,
//! §5.2.2) the context stream starts with `protos` rows of symbols that are not output; each
//! row's selector (table 0) then says whether its symbols are plain (table 1) or differences
//! from a prototype, modulo the alphabet (table 2).

use super::scales::{RowScales, ScaleReader};
use crate::error::PayloadError;
use crate::output::Output;
use crate::rans::{RansDecoder, RansStream, RowOut, RowStart, ROW_KERNEL};
use crate::table::{IntParams, TensorInfo, MAX_CLUSTERS};

/// The parts of an `int` payload, checked.
pub struct Parts<'a> {
    pub scales: RowScales<'a>,
    pub stream: RansStream<'a>,
    /// Symbols of the prototype rows, `protos × cols` (0 without prototypes).
    pub proto_len: u64,
}

impl Parts<'_> {
    /// Scratch the payload needs: the coded scales' slots, then the stream's, then the
    /// prototype rows' symbols (v4).
    pub fn scratch_len(&self) -> Result<usize, PayloadError> {
        let protos = usize::try_from(self.proto_len).unwrap_or(usize::MAX);
        self.scales
            .total_scratch(self.stream.scratch_len().saturating_add(protos))
    }
}

/// Splits and checks a payload: the scales (every stored one finite and ≥ 0) and the stream
/// header, without decoding symbols.
pub fn parts<'a>(
    info: &TensorInfo<'_>,
    p: &IntParams,
    payload: &'a [u8],
) -> Result<Parts<'a>, PayloadError> {
    let mut parts = Parts::empty();
    parts.read(info, p, payload)?;
    Ok(parts)
}

impl<'a> Parts<'a> {
    /// No parts, to be filled by [`Parts::read`].
    pub(crate) const fn empty() -> Parts<'a> {
        Parts {
            scales: RowScales::empty(),
            stream: RansStream::empty(),
            proto_len: 0,
        }
    }

    /// [`parts`] into `self`: the headers are parsed where they lie, not moved.
    pub(crate) fn read(
        &mut self,
        info: &TensorInfo<'_>,
        p: &IntParams,
        payload: &'a [u8],
    ) -> Result<(), PayloadError> {
        let rows = info.rows_cols().0;
        let rest = self
            .scales
            .read(payload, rows, info.payload_offset, p.scale_dtype)?;
        let max_alphabet = (2 * p.qmax() + 1) as u16;
        let base = info
            .payload_offset
            .saturating_add((payload.len() - rest.len()) as u64);
        let cols = info.rows_cols().1;
        // Bounded: protos ≤ 255, cols ≤ 2^31, rows × cols ≤ 2^31 (FORMAT.md §8).
        self.proto_len = u64::from(p.protos).saturating_mul(cols);
        let s = &mut self.stream;
        if p.protos > 0 {
            let tables = [u16::from(p.protos) + 1, max_alphabet, max_alphabet];
            let count = self
                .proto_len
                .saturating_add(info.numel())
                .saturating_add(rows);
            s.read(rest, base, count, &tables, true)?;
        } else if p.clusters == 0 {
            s.read(rest, base, info.numel(), &[max_alphabet], false)?;
        } else {
            let mut alphabets = [max_alphabet; MAX_CLUSTERS as usize + 1];
            alphabets[0] = p.clusters as u16;
            let tables = alphabets.get(..=p.clusters as usize).unwrap_or(&[]);
            s.read(rest, base, info.numel().saturating_add(rows), tables, true)?;
        }
        if s.byte_len != rest.len() {
            return Err(PayloadError::TrailingBytes {
                len: (rest.len() - s.byte_len) as u64,
            });
        }
        self.scratch_len()?;
        Ok(())
    }
}

/// The symbol stream alone (to size it or read its symbols without decoding weights).
pub fn stream<'a>(
    info: &TensorInfo<'_>,
    p: &IntParams,
    payload: &'a [u8],
) -> Result<RansStream<'a>, PayloadError> {
    parts(info, p, payload).map(|p| p.stream)
}

/// The start of a row (FORMAT.md §5.2.1): with clusters, its id from table 0 selects the
/// table its symbols use.
fn begin_row(dec: &mut RansDecoder<'_, '_>, p: &IntParams) -> Result<(), PayloadError> {
    if p.clusters > 0 {
        dec.select(0)?;
        let id = dec.next_symbol()?;
        dec.select(1 + id as usize)?;
    }
    Ok(())
}

/// Decodes the payload's symbols and scales without reconstructing weights: `symbols` gets
/// the `rows × cols` symbols `s` (cluster ids left out), `scales` each row's scale widened to
/// f32, so that weight `(r, c)` is `(symbols[r·cols + c] as f32 − qmax) × scales[r]`, the
/// f32 value `decode` writes. Both lengths must be exact (checked by the caller).
pub fn decode_symbols(
    info: &TensorInfo<'_>,
    p: &IntParams,
    payload: &[u8],
    symbols: &mut [u8],
    scales: &mut [f32],
    scratch: &mut [u8],
) -> Result<(), PayloadError> {
    let mut parts = Parts::empty();
    parts.read(info, p, payload)?;
    let cols = info.rows_cols().1 as usize;
    if whole_rows_first(p, &parts) {
        let dims = (scales.len(), cols);
        return rows_of(
            &parts,
            p,
            dims,
            scratch,
            &mut Dest::Symbols { symbols, scales },
        );
    }
    // Built in place (a decoder is large).
    let mut reader = ScaleReader::unbuilt(&parts.scales);
    let scratch = parts.scales.reader_in(&mut reader, scratch)?;
    let mut dec = RansDecoder::blank();
    dec.reset(&parts.stream, scratch)?;
    for (r, scale) in scales.iter_mut().enumerate() {
        begin_row(&mut dec, p)?;
        *scale = reader.next_scale()?;
        let at = r.saturating_mul(cols);
        let row = symbols
            .get_mut(at..at.saturating_add(cols))
            .unwrap_or(&mut []);
        dec.decode(row)?;
    }
    dec.finish()?;
    reader.finish()
}

/// Decodes the payload into `out` (length already checked to be `numel`).
pub fn decode(
    info: &TensorInfo<'_>,
    p: &IntParams,
    payload: &[u8],
    out: &mut Output<'_>,
    scratch: &mut [u8],
) -> Result<(), PayloadError> {
    let mut parts = Parts::empty();
    parts.read(info, p, payload)?;
    let (rows, cols) = info.rows_cols();
    let qmax = p.qmax() as f32;
    if whole_rows_first(p, &parts) {
        let dims = (rows as usize, cols as usize);
        return rows_of(&parts, p, dims, scratch, &mut Dest::Out(out));
    }
    let mut scales = ScaleReader::unbuilt(&parts.scales);
    let scratch = parts.scales.reader_in(&mut scales, scratch)?;
    let mut dec = RansDecoder::blank();
    dec.reset(&parts.stream, scratch)?;
    super::decode_rows(
        &mut dec,
        rows as usize,
        cols as usize,
        out,
        |dec| begin_row(dec, p),
        || scales.next_scale(),
        |out, at, syms, scale| out.put_dequant(at, syms, qmax, scale),
    )?;
    dec.finish()?;
    scales.finish()
}

/// Symbols reconstructed per step of [`predicted_rows`] and [`decode_group`] (stack buffer).
const CHUNK: usize = 2048;

/// Rows decoded at a time on the row kernel ([`RansDecoder::decode_rows`]), at most (and, into
/// a buffer of other outputs, at most `CHUNK` symbols; into f32 or symbol outputs the kernel
/// writes directly: the slice's rows of 384 went 5 to a call, whose setup cost 7 % of the
/// decode, and 64 to a call cost the kernels without a gather 5–10 % in building their
/// tables; the slice's pair into f32 at 256 rows 0.44 ns a weight, at 64 0.48).
const ROW_BATCH: usize = 256;

/// One tensor of [`decode_group`]: what [`decode`] (or [`decode_symbols`]) takes, its
/// payload's parts checked by [`pairable`].
pub struct Job<'j, 'o> {
    pub info: &'j TensorInfo<'j>,
    pub params: IntParams,
    pub parts: &'j Parts<'j>,
    pub out: Dest<'j, 'o>,
    pub scratch: &'j mut [u8],
}

/// Where a tensor of [`decode_group`] goes.
pub enum Dest<'j, 'o> {
    /// Dequantized, as [`decode`] writes it.
    Out(&'j mut Output<'o>),
    /// As [`decode_symbols`] writes it: the symbols, and each row's scale in f32.
    Symbols {
        symbols: &'j mut [u8],
        scales: &'j mut [f32],
    },
}

impl Dest<'_, '_> {
    /// Whether the buffers have the lengths `info` needs (`numel` elements; for symbols also
    /// one scale a row).
    pub fn fits(&self, info: &TensorInfo<'_>) -> bool {
        match self {
            Dest::Out(out) => out.len() as u64 == info.numel(),
            Dest::Symbols { symbols, scales } => {
                symbols.len() as u64 == info.numel() && scales.len() as u64 == info.rows_cols().0
            }
        }
    }
}

/// `info`'s payload parts, where it can run in lockstep beside others in [`decode_group`]:
/// no prototypes, at least one column, a stream whose lanes pair up
/// ([`RansDecoder::lanes_pair_up`] with another such), and not one that [`decode`] runs on
/// the row kernel alone (32 lanes where it is built: one such stream at a time measured
/// faster than two in lockstep with gathers, 4 % on the bundled slice's clustered matrices,
/// as fast on plain ones) unless two of its kind run faster in lockstep on the kernels
/// without a gather ([`RansDecoder::rows_pair_up`]: int6 at up to 11 bits where those run).
/// `None` otherwise (or where the parts fail their checks).
pub fn pairable<'a>(info: &TensorInfo<'_>, p: &IntParams, payload: &'a [u8]) -> Option<Parts<'a>> {
    let mut slot = None;
    pairable_in(info, p, payload, &mut slot);
    slot
}

/// [`pairable`] into `slot`, the headers parsed where they lie (a stream header holds its
/// frequency tables: moving one about was 2 % of a demo model's load): whether it is.
pub fn pairable_in<'a>(
    info: &TensorInfo<'_>,
    p: &IntParams,
    payload: &'a [u8],
    slot: &mut Option<Parts<'a>>,
) -> bool {
    if p.protos > 0 || info.rows_cols().1 == 0 {
        *slot = None;
        return false;
    }
    let parts = slot.insert(Parts::empty());
    let ok = parts.read(info, p, payload).is_ok() && {
        let lanes = parts.stream.lanes as usize;
        // A 32-lane stream otherwise decodes alone on the row kernel (`whole_rows_first`).
        let rows_pair =
            p.protos == 0 && p.bits <= 6 && RansDecoder::rows_pair_up(parts.stream.prob_bits);
        RansDecoder::lanes_pair_up(lanes, lanes) && (!whole_rows_first(p, parts) || rows_pair)
    };
    if !ok {
        *slot = None;
    }
    ok
}

/// Decodes `N` `int` payloads that are [`pairable`] with their streams in lockstep
/// ([`RansDecoder::decode_each`]: with the `simd` feature, 8-lane streams share one loop,
/// 32-lane ones two to a loop), as many symbols of each at a time (up to `CHUNK`), across rows
/// where there are no clusters and up to the row's end where there are (the next row starts
/// with its cluster id). Returns `None`, having written nothing, where any fails its checks
/// before the first symbol.
/// Otherwise each tensor's result: `Ok` exactly when [`decode`] succeeds, its output then
/// holding exactly what [`decode`] writes (a failing tensor stops; the others go on). A
/// failing tensor's error can differ from the one [`decode`] reports (the checks run in
/// another order).
pub fn decode_group<const N: usize>(
    mut jobs: [Job<'_, '_>; N],
) -> Option<[Result<(), PayloadError>; N]> {
    /// One tensor's decode in progress.
    struct Going<'r, 'o> {
        scales: ScaleReader<'r, 'r, 'r>,
        /// Row scales read ahead for the row kernel.
        ahead: Ahead,
        dec: RansDecoder<'r, 'r>,
        rows: Rows,
        out: Dest<'r, 'o>,
        params: IntParams,
        ok: Result<(), PayloadError>,
        len: usize,
        numel: u64,
    }
    impl Going<'_, '_> {
        /// A tensor of nothing, to be filled in where it lies.
        const fn blank() -> Self {
            Going {
                // Coded, so that coded scales' reader is built where it lies.
                scales: ScaleReader::blank(),
                ahead: Ahead::new(0),
                dec: RansDecoder::blank(),
                rows: Rows {
                    cols: 0,
                    col: 0,
                    at: 0,
                    scale: 0.0,
                    qmax: 0.0,
                    clustered: false,
                },
                out: Dest::Symbols {
                    symbols: &mut [],
                    scales: &mut [],
                },
                params: IntParams {
                    bits: 0,
                    scale_dtype: crate::table::ScaleDtype::F16,
                    clusters: 0,
                    protos: 0,
                },
                ok: Ok(()),
                len: 0,
                numel: 0,
            }
        }
    }
    // Each built in its place: a decoder is large (its tables), and moving four of them
    // about (even once, into the array) cost more than a small tensor's decode.
    let mut going: [Option<Going<'_, '_>>; N] = [const { Some(Going::blank()) }; N];
    for (j, g) in jobs.iter_mut().zip(&mut going) {
        let Some(g) = g else { return None };
        g.rows = Rows::new(j.info, &j.params);
        g.out = match &mut j.out {
            Dest::Out(o) => Dest::Out(o),
            Dest::Symbols { symbols, scales } => Dest::Symbols { symbols, scales },
        };
        g.params = j.params;
        g.numel = j.info.numel();
        g.ahead = Ahead::new(j.info.rows_cols().0 as usize);
        let rest = j
            .parts
            .scales
            .reader_in(&mut g.scales, &mut *j.scratch)
            .ok()?;
        g.dec.reset(&j.parts.stream, rest).ok()?;
    }
    let mut bufs = [[0u8; CHUNK]; N];
    let mut rows_kernel = ROW_KERNEL;
    loop {
        if rows_kernel {
            if whole_rows(&mut going, &mut bufs) > 0 {
                continue;
            }
            rows_kernel = false;
        }
        let mut least = CHUNK;
        for g in going.iter_mut().flatten() {
            // Results are written only when they fail (moving them about costs).
            if g.ok.is_ok() {
                if let Err(e) = g.rows.begin(&mut g.dec, &g.params) {
                    g.ok = Err(e);
                }
            }
            g.len = g.rows.next_len(&g.dec, &g.ok);
            if g.len > 0 {
                least = least.min(g.len);
            }
        }
        if going.iter().flatten().all(|g| g.len == 0) {
            break;
        }
        // As many of each, so the lockstep loop covers all (rows of different lengths would
        // otherwise leave the longer ones' rest to the one-stream loop).
        for g in going.iter_mut().flatten() {
            g.len = g.len.min(least);
        }
        let results = {
            let mut lens = going
                .each_ref()
                .map(|g| g.as_ref().map_or(0, |g| g.len))
                .into_iter();
            let ys = bufs.each_mut().map(|b| {
                let n = lens.next().unwrap_or(0).min(CHUNK);
                &mut b[..n]
            });
            let decs = going.each_mut().map(|g| g.as_mut().map(|g| &mut g.dec));
            RansDecoder::decode_present(decs, ys)
        };
        for ((g, r), b) in going.iter_mut().zip(results).zip(&bufs) {
            let Some(g) = g else { continue };
            if g.len == 0 {
                continue;
            }
            let (ahead, scales) = (&mut g.ahead, &mut g.scales);
            let done = r.map_err(PayloadError::from);
            let put = |()| g.rows.put(&b[..g.len], || ahead.next(scales), &mut g.out);
            if let Err(e) = done.and_then(put) {
                g.ok = Err(e);
            }
        }
    }
    /// Whole rows of every tensor with symbols left, in lockstep on the row kernel
    /// ([`RansDecoder::decode_rows`]: clustered rows' ids decoded there too), into their
    /// outputs (written by the kernel where every output is an f32 buffer, dequantized, or
    /// every one symbols). Returns the rows decoded; 0, having done nothing, where the kernel
    /// does not apply (8-lane tensors none of them clustered, tensors of different widths,
    /// one in the middle of a row, or the decoder's conditions).
    fn whole_rows<const N: usize>(
        going: &mut [Option<Going<'_, '_>>; N],
        bufs: &mut [[u8; CHUNK]; N],
    ) -> usize {
        let live = |g: &Going<'_, '_>| g.ok.is_ok() && g.dec.remaining() > 0;
        let mut cols = 0;
        for g in going.iter().flatten().filter(|g| live(g)) {
            if g.rows.col != 0 || (cols != 0 && g.rows.cols != cols) {
                return 0;
            }
            cols = g.rows.cols;
        }
        // Plain 8-lane tensors run faster in chunks across rows (`decode_present`); 32-lane
        // ones are grouped only where the row kernel runs them faster in lockstep
        // (`pairable`).
        let by_rows = going
            .iter()
            .flatten()
            .any(|g| live(g) && (g.rows.clustered || g.dec.lanes() == 32));
        let all = |f: fn(&Dest<'_, '_>) -> bool| {
            going
                .iter()
                .flatten()
                .filter(|g| live(g))
                .all(|g| f(&g.out))
        };
        let f32s = all(|d| matches!(d, Dest::Out(Output::F32(_))));
        let syms = all(|d| matches!(d, Dest::Symbols { .. }));
        // Rows wider than `bufs` only into f32 or symbol outputs (which the kernel writes
        // directly).
        let direct = f32s || syms;
        if cols == 0 || (cols > CHUNK && !direct) || !by_rows {
            return 0;
        }
        // Into f32 or symbol buffers the kernel writes the outputs directly (the row scales
        // read ahead); other outputs go through `bufs`.
        let batch = if direct {
            ROW_BATCH
        } else {
            (CHUNK / cols).min(ROW_BATCH)
        };
        // Each live tensor's next scales (fewer where one fails to read: the rows stop there).
        let mut rows = batch;
        for g in going.iter_mut().flatten().filter(|g| live(g)) {
            let left = (g.numel / cols as u64).saturating_sub((g.rows.at / cols) as u64);
            let want = batch.min(left as usize);
            rows = rows.min(if direct {
                g.ahead.fill(&mut g.scales, want)
            } else {
                want
            });
        }
        if rows == 0 {
            return 0;
        }
        let on = going.each_ref().map(|g| g.as_ref().is_some_and(live));
        let mut decs: [Option<&mut RansDecoder<'_, '_>>; N] = [const { None }; N];
        let mut starts = [RowStart::Plain; N];
        let mut outs: [RowOut<'_>; N] = core::array::from_fn(|_| RowOut::Symbols(&mut []));
        for (((g, d), (start, out)), b) in going
            .iter_mut()
            .zip(&mut decs)
            .zip(starts.iter_mut().zip(&mut outs))
            .zip(bufs.iter_mut())
        {
            let Some(g) = g.as_mut().filter(|g| live(g)) else {
                continue;
            };
            let Going {
                dec,
                rows: r,
                out: dest,
                ahead,
                ..
            } = g;
            *d = Some(dec);
            if r.clustered {
                *start = RowStart::Clusters;
            }
            *out = match dest {
                Dest::Out(Output::F32(o)) if f32s => RowOut::F32 {
                    out: o.get_mut(r.at..).unwrap_or_default(),
                    scales: ahead.ready(),
                    qmax: r.qmax,
                },
                Dest::Symbols { symbols, .. } if syms => {
                    let end = r.at + rows * cols;
                    RowOut::Symbols(symbols.get_mut(r.at..end).unwrap_or_default())
                }
                _ => RowOut::Symbols(&mut b[..rows * cols]),
            };
        }
        let rows = RansDecoder::decode_rows(&mut decs, starts, cols, outs);
        if rows == 0 {
            return 0;
        }
        for ((g, b), on) in going.iter_mut().zip(&*bufs).zip(on) {
            let Some(g) = g.as_mut().filter(|_| on) else {
                continue;
            };
            if direct {
                if let Dest::Symbols { scales, .. } = &mut g.out {
                    let first = g.rows.at / cols;
                    let ready = g.ahead.ready().get(..rows).unwrap_or_default();
                    if let Some(s) = scales.get_mut(first..first + ready.len()) {
                        s.copy_from_slice(ready);
                    }
                }
                g.ahead.consume(rows);
                g.rows.at += rows * cols;
                continue;
            }
            let symbols = b.get(..rows * cols).unwrap_or_default();
            let (ahead, scales) = (&mut g.ahead, &mut g.scales);
            if let Err(e) = g.rows.put(symbols, || ahead.next(scales), &mut g.out) {
                g.ok = Err(e);
            }
        }
        rows
    }
    let mut results: [Result<(), PayloadError>; N] = core::array::from_fn(|_| Ok(()));
    for (g, r) in going.iter_mut().zip(&mut results) {
        let Some(g) = g else { continue };
        *r = (|| {
            core::mem::replace(&mut g.ok, Ok(()))?;
            g.dec.check_finished()?;
            // Every row was written (the stream's count says so; checked all the same).
            if g.rows.at as u64 != g.numel {
                return Err(crate::error::RansError::BadFinalState.into());
            }
            g.scales.check_finished()
        })();
    }
    Some(results)
}

/// Where the next symbols of a plain `int` stream go: element `at`, column `col` of a row of
/// `cols` whose scale is `scale`.
struct Rows {
    cols: usize,
    col: usize,
    at: usize,
    scale: f32,
    qmax: f32,
    /// Each row's symbols follow its cluster id (and stop at the row's end).
    clustered: bool,
}

impl Rows {
    fn new(info: &TensorInfo<'_>, p: &IntParams) -> Rows {
        Rows {
            cols: info.rows_cols().1 as usize,
            col: 0,
            at: 0,
            scale: 0.0,
            qmax: p.qmax() as f32,
            clustered: p.clusters > 0,
        }
    }

    /// At a row's start with symbols left, [`begin_row`] (its cluster id selects its table).
    fn begin(&self, dec: &mut RansDecoder<'_, '_>, p: &IntParams) -> Result<(), PayloadError> {
        if self.clustered && self.col == 0 && dec.remaining() > 0 {
            begin_row(dec, p)?;
        }
        Ok(())
    }

    /// The symbols to decode next: none after an error, else up to `CHUNK` (and the row's
    /// end, with clusters).
    fn next_len(&self, dec: &RansDecoder<'_, '_>, ok: &Result<(), PayloadError>) -> usize {
        if ok.is_err() {
            return 0;
        }
        let left = dec.remaining().min(CHUNK as u64) as usize;
        if self.clustered {
            left.min(self.cols - self.col)
        } else {
            left
        }
    }

    /// Puts the stream's next `symbols` into `out` (dequantized, or as they are), reading a
    /// row's scale at its start.
    fn put(
        &mut self,
        mut symbols: &[u8],
        mut next_scale: impl FnMut() -> Result<f32, PayloadError>,
        out: &mut Dest<'_, '_>,
    ) -> Result<(), PayloadError> {
        while !symbols.is_empty() {
            if self.col == 0 {
                self.scale = next_scale()?;
                if let Dest::Symbols { scales, .. } = out {
                    // `at` is a row's start here (and `cols` ≥ 1: `pairable`).
                    let row = self.at.checked_div(self.cols);
                    if let Some(s) = row.and_then(|r| scales.get_mut(r)) {
                        *s = self.scale;
                    }
                }
            }
            let n = (self.cols - self.col).min(symbols.len());
            let (now, rest) = symbols.split_at(n);
            match out {
                Dest::Out(out) => out.put_dequant(self.at, now, self.qmax, self.scale),
                Dest::Symbols { symbols, .. } => {
                    if let Some(dst) = symbols.get_mut(self.at..self.at + n) {
                        dst.copy_from_slice(now);
                    }
                }
            }
            self.at += n;
            self.col += n;
            if self.col == self.cols {
                self.col = 0;
            }
            symbols = rest;
        }
        Ok(())
    }
}

/// Whether [`rows_of`] decodes this payload: one with prototype rows always; a 32-lane
/// stream where the row kernel is built (one stream of 32 lanes is latency-bound: the kernel
/// hides the context steps and the dequantization in it).
fn whole_rows_first(p: &IntParams, parts: &Parts<'_>) -> bool {
    p.protos > 0 || (ROW_KERNEL && parts.stream.lanes == 32)
}

/// The row loop of an `int` payload into `dest` (dequantized, or as symbols and row
/// scales), whole rows on the row kernel where it applies ([`RansDecoder::decode_rows`]:
/// dequantized there for an f32 buffer), the rest one row at a time. With prototype rows
/// (FORMAT.md §5.2.2) it first decodes the prototypes into the end of scratch (the stream's
/// tables before them); each row's selector then says whether its symbols are plain or
/// differences from a prototype, which is added back modulo the alphabet. With clusters
/// (§5.2.1) each row's id selects its table.
fn rows_of(
    parts: &Parts<'_>,
    p: &IntParams,
    (rows, cols): (usize, usize),
    scratch: &mut [u8],
    dest: &mut Dest<'_, '_>,
) -> Result<(), PayloadError> {
    let mut scales = ScaleReader::unbuilt(&parts.scales);
    let scratch = parts.scales.reader_in(&mut scales, scratch)?;
    let own = parts.stream.scratch_len();
    let proto_len = usize::try_from(parts.proto_len).unwrap_or(usize::MAX);
    let needed = own.saturating_add(proto_len);
    if scratch.len() < needed {
        return Err(crate::error::RansError::ScratchTooSmall {
            needed,
            got: scratch.len(),
        }
        .into());
    }
    // The prototypes at the end: the stream gets the rest, with room for its packed table
    // where the caller gave the fast scratch length.
    let (slots, protos) = scratch.split_at_mut(scratch.len() - proto_len);
    let mut dec = RansDecoder::blank();
    dec.reset(&parts.stream, slots)?;
    let alphabet = (2 * p.qmax() + 1) as u16;
    let qmax = p.qmax() as f32;
    if p.protos > 0 {
        dec.select(1)?;
        dec.decode(protos)?;
    }
    let protos = &*protos;
    let start = if p.protos > 0 {
        RowStart::Protos {
            rows: protos,
            alphabet,
        }
    } else if p.clusters > 0 {
        RowStart::Clusters
    } else {
        RowStart::Plain
    };
    // What the rows write: the symbols of elements `at..`, their row's scale.
    let put = |dest: &mut Dest<'_, '_>, at: usize, syms: &[u8], scale: f32| match dest {
        Dest::Out(out) => out.put_dequant(at, syms, qmax, scale),
        Dest::Symbols { symbols, scales } => {
            if at.is_multiple_of(cols.max(1)) {
                if let Some(s) = scales.get_mut(at / cols.max(1)) {
                    *s = scale;
                }
            }
            if let Some(dst) = symbols.get_mut(at..at + syms.len()) {
                dst.copy_from_slice(syms);
            }
        }
    };
    let mut syms = [0u8; CHUNK];
    let mut ahead = Ahead::new(rows);
    let mut at = 0usize;
    let mut row = 0;
    // Rows wider than `syms` go to the kernel only into an f32 or symbol buffer (written
    // directly).
    let direct = matches!(dest, Dest::Out(Output::F32(_)) | Dest::Symbols { .. });
    let mut rows_kernel = ROW_KERNEL && cols > 0 && (cols <= CHUNK || direct);
    // A row of no columns still carries its selector or id (and its scale, which bounds the
    // rows by the payload's length).
    while row < rows {
        // Whole rows at a time on the row kernel where it applies.
        if rows_kernel {
            // Into an f32 or symbol buffer the kernel writes the output directly (`ROW_BATCH`
            // rows a call, so that the kernels without a gather win their tables' build
            // back); other outputs go through `syms` (`CHUNK` symbols).
            let room = if direct {
                ROW_BATCH
            } else {
                CHUNK / cols.max(1)
            };
            let batch = room.min(ROW_BATCH).min(rows - row);
            let ready = ahead.fill(&mut scales, batch);
            let mut dec = [Some(&mut dec)];
            let done = match dest {
                Dest::Out(Output::F32(buf)) if ready > 0 => {
                    let out = RowOut::F32 {
                        out: buf.get_mut(at..).unwrap_or_default(),
                        scales: ahead.ready(),
                        qmax,
                    };
                    RansDecoder::decode_rows(&mut dec, [start], cols, [out])
                }
                Dest::Symbols { symbols, scales } if ready > 0 => {
                    let end = (at + ready * cols).min(symbols.len());
                    let out = RowOut::Symbols(symbols.get_mut(at..end).unwrap_or_default());
                    let done = RansDecoder::decode_rows(&mut dec, [start], cols, [out]);
                    let first = at / cols;
                    let ready = ahead.ready().get(..done).unwrap_or_default();
                    if let Some(s) = scales.get_mut(first..first + ready.len()) {
                        s.copy_from_slice(ready);
                    }
                    done
                }
                _ if ready > 0 => {
                    let out = RowOut::Symbols(&mut syms[..ready * cols]);
                    let done = RansDecoder::decode_rows(&mut dec, [start], cols, [out]);
                    let rows = syms[..done * cols].chunks_exact(cols).zip(ahead.ready());
                    for (r, (sy, &scale)) in rows.enumerate() {
                        put(dest, at + r * cols, sy, scale);
                    }
                    done
                }
                _ => 0,
            };
            ahead.consume(done);
            row += done;
            at += done * cols;
            if done > 0 {
                continue;
            }
            rows_kernel = false;
        }
        row += 1;
        let mut proto = None;
        if p.protos > 0 {
            dec.select(0)?;
            let sel = dec.next_symbol()? as usize;
            proto = match sel {
                0 => None,
                k => protos.get((k - 1) * cols..k * cols),
            };
            dec.select(if proto.is_some() { 2 } else { 1 })?;
        } else {
            begin_row(&mut dec, p)?;
        }
        let scale = ahead.next(&mut scales)?;
        let mut done = 0usize;
        while done < cols {
            let n = (cols - done).min(CHUNK);
            let sy = &mut syms[..n];
            dec.decode(sy)?;
            if let Some(base) = proto.and_then(|pr| pr.get(done..done + n)) {
                add_proto(sy, base, alphabet);
            }
            put(dest, at, sy, scale);
            at += n;
            done += n;
        }
    }
    dec.finish()?;
    scales.finish()
}

/// Row scales read ahead of their rows (the row kernel takes a batch's at once): those not
/// yet used, and the error that stopped the reading, due at its row (after the row's symbols,
/// as when the rows are read one at a time).
struct Ahead {
    scales: [f32; ROW_BATCH],
    used: usize,
    len: usize,
    err: Option<PayloadError>,
    /// Rows not yet read (the tensor's, at first).
    left: usize,
}

impl Ahead {
    /// Nothing read yet of `rows` rows' scales.
    const fn new(rows: usize) -> Ahead {
        Ahead {
            scales: [0.0; ROW_BATCH],
            used: 0,
            len: 0,
            err: None,
            left: rows,
        }
    }

    /// Reads from `reader` until `want` (≤ [`ROW_BATCH`], and not past the rows) scales are
    /// ready or one fails; returns how many are ready.
    fn fill(&mut self, reader: &mut ScaleReader<'_, '_, '_>, want: usize) -> usize {
        if self.used > 0 {
            self.scales.copy_within(self.used..self.len, 0);
            (self.len, self.used) = (self.len - self.used, 0);
        }
        let want = want.min(ROW_BATCH).min(self.len + self.left);
        if self.len < want && self.err.is_none() {
            let (n, err) = reader.read_into(&mut self.scales[self.len..want]);
            self.len += n;
            self.left -= n;
            self.err = err;
        }
        self.len - self.used
    }

    /// The scales ready, next first.
    fn ready(&self) -> &[f32] {
        self.scales.get(self.used..self.len).unwrap_or_default()
    }

    /// Marks the first `n` ready scales used.
    fn consume(&mut self, n: usize) {
        self.used = (self.used + n).min(self.len);
    }

    /// The next row's scale: a ready one (a batch read ahead when none is), else the error
    /// the reading stopped at, else one read (past the rows).
    fn next(&mut self, reader: &mut ScaleReader<'_, '_, '_>) -> Result<f32, PayloadError> {
        // (Builds without the row kernel read one at a time: less code.)
        if ROW_KERNEL && self.used == self.len && self.err.is_none() && self.left > 0 {
            self.fill(reader, ROW_BATCH);
        }
        if let Some(&s) = self.scales.get(self.used).filter(|_| self.used < self.len) {
            self.used += 1;
            return Ok(s);
        }
        match self.err.take() {
            Some(e) => Err(e),
            None => reader.next_scale(),
        }
    }
}

/// A predicted row's symbols from its differences `sy` and its prototype `base`: `(s + b)
/// mod alphabet`, in place.
#[inline]
fn add_proto(sy: &mut [u8], base: &[u8], alphabet: u16) {
    for (s, &b) in sy.iter_mut().zip(base) {
        // Both below the alphabet (table limits), so one subtraction wraps.
        let t = *s as u16 + b as u16;
        *s = if t >= alphabet { t - alphabet } else { t } as u8;
    }
}
