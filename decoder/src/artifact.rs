//! An opened artifact: the whole file validated up front (FORMAT.md §7), then random access
//! to any tensor's reconstruction without touching the others.

use crate::codec;
use crate::crc32c::crc32c;
use crate::cursor::Cursor;
use crate::error::{Error, PayloadError, RequestError, TableError};
use crate::header::{Header, HEADER_LEN};
use crate::metadata::Metadata;
use crate::output::Output;
use crate::table::{align_up, read_entry, Codec, TensorInfo};

/// A validated, borrowed view of a PCLL file.
#[derive(Debug, Clone)]
pub struct Artifact<'a> {
    file: &'a [u8],
    header: Header,
    metadata: Metadata<'a>,
    table: &'a [u8],
}

/// The metadata and table sections of `file` where `header` (validated against it, as
/// [`Artifact::parse_prefix`] finds them) puts them.
#[cfg(any(feature = "alloc", feature = "capi"))]
fn sections<'a>(file: &'a [u8], header: &Header) -> (&'a [u8], &'a [u8]) {
    // (The header's sections lie within `file`, so neither sum overflows.)
    let at = |offset: u64, len: u64| {
        let start = offset as usize;
        file.get(start..start + len as usize).unwrap_or(&[])
    };
    (
        at(header.metadata_offset, header.metadata_len),
        at(header.table_offset, header.table_len),
    )
}

/// An artifact (the whole file, or its first bytes up to the table's end) held in memory,
/// owned and validated once: [`OwnedArtifact::artifact`] gives the [`Artifact`] view again
/// without checking anything twice, and [`OwnedArtifact::tensor`] finds an entry in O(1). For
/// a reader that asks for tensors one at a time (streaming payloads from disk, a binding
/// holding a file for later requests): parsing again for each request checks the header
/// checksum, the metadata's UTF-8 and every table entry each time, which with a tokenizer in
/// the metadata was a sixth of a small model's `generate --stream` time. The bytes are private
/// and never change after the check, so every view is of validated bytes.
#[cfg(feature = "alloc")]
#[derive(Debug, Clone)]
pub struct OwnedArtifact {
    bytes: alloc::boxed::Box<[u8]>,
    header: Header,
    metadata_entries: u32,
    /// Where each table entry starts, from the table's start.
    entries: alloc::boxed::Box<[u32]>,
}

#[cfg(feature = "alloc")]
impl OwnedArtifact {
    /// Validates `file` exactly as [`Artifact::parse`] does, and keeps it.
    pub fn parse(file: alloc::vec::Vec<u8>) -> Result<OwnedArtifact, Error> {
        let len = file.len() as u64;
        OwnedArtifact::parse_prefix(file, len)
    }

    /// Validates `prefix`, the first bytes of a file of `file_len` bytes, exactly as
    /// [`Artifact::parse_prefix`] does, and keeps it.
    pub fn parse_prefix(
        prefix: alloc::vec::Vec<u8>,
        file_len: u64,
    ) -> Result<OwnedArtifact, Error> {
        let bytes = prefix.into_boxed_slice();
        let (header, metadata_entries, entries) = {
            let a = Artifact::parse_prefix(&bytes, file_len)?;
            let mut c = Cursor::new(a.table, 0);
            let mut entries = alloc::vec::Vec::with_capacity(a.tensor_count() as usize);
            for index in 0..a.tensor_count() {
                // The table is valid, so every entry reads (a table is ≤ 64 MiB: u32 offsets).
                entries.push(c.offset() as u32);
                read_entry(&mut c, index, a.header.version)?;
            }
            (a.header, a.metadata.len(), entries.into_boxed_slice())
        };
        Ok(OwnedArtifact {
            bytes,
            header,
            metadata_entries,
            entries,
        })
    }

    /// The view: what [`Artifact::parse_prefix`] returned for these bytes, at the cost of a
    /// few field copies.
    pub fn artifact(&self) -> Artifact<'_> {
        let (mbytes, table) = sections(&self.bytes, &self.header);
        Artifact {
            file: &self.bytes,
            header: self.header,
            metadata: Metadata::validated(
                mbytes,
                self.header.metadata_offset,
                self.metadata_entries,
            ),
            table,
        }
    }

    /// The bytes held (the file, or its prefix).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Entry `index`, as [`Artifact::tensor`] gives it, in O(1) (not O(index)).
    pub fn tensor(&self, index: u32) -> Result<TensorInfo<'_>, Error> {
        let count = self.header.tensor_count;
        let at = *self
            .entries
            .get(index as usize)
            .ok_or(RequestError::NoSuchIndex { index, count })?;
        let (_, table) = sections(&self.bytes, &self.header);
        let rest = table.get(at as usize..).unwrap_or(&[]);
        let base = self.header.table_offset.saturating_add(u64::from(at));
        Ok(read_entry(
            &mut Cursor::new(rest, base),
            index,
            self.header.version,
        )?)
    }
}

impl<'a> Artifact<'a> {
    /// Validates `file`: header fields and checksum, every metadata entry, every table entry,
    /// name order, payload placement, zero padding and the file length. Payload checksums
    /// are checked when a tensor is decoded, or all at once by [`Artifact::verify_payloads`].
    /// Cost: O(header + metadata + table + tensors × 63 padding bytes); no allocation.
    pub fn parse(file: &'a [u8]) -> Result<Artifact<'a>, Error> {
        Artifact::parse_prefix(file, file.len() as u64)
    }

    /// Opens a file from its first bytes only, for callers that read payloads on demand
    /// (streaming from disk with bounded memory). `prefix` must hold at least header,
    /// metadata and table; `file_len` is the length of the whole file. Everything
    /// [`Artifact::parse`] checks is checked, except the zero padding between payloads that
    /// lies beyond `prefix`. Decode with [`Artifact::decode_payload`], handing in each
    /// tensor's `payload_len` bytes read from `payload_offset`.
    pub fn parse_prefix(prefix: &'a [u8], file_len: u64) -> Result<Artifact<'a>, Error> {
        let file = prefix;
        let header = Header::parse_prefix(file, file_len)?;
        let mstart = header.metadata_offset as usize;
        let mbytes = file
            .get(mstart..mstart + header.metadata_len as usize)
            .unwrap_or(&[]);
        let metadata = Metadata::parse(mbytes, header.metadata_offset)?;
        let tstart = header.table_offset as usize;
        let table = file
            .get(tstart..tstart + header.table_len as usize)
            .unwrap_or(&[]);
        let a = Artifact {
            file,
            header,
            metadata,
            table,
        };
        a.validate_table()?;
        Ok(a)
    }

    /// The view [`Artifact::parse`] gave for `file` before, rebuilt without reading its
    /// checksum, metadata or table again: the header's fields are checked and its sections
    /// placed within `file` again, the metadata's entry count is read from the section. For
    /// the C ABI, whose contract is that the bytes `pcll_open` validated stay unchanged while
    /// they are used: each request then costs O(1) instead of O(metadata + table) (the C
    /// library's load of the demo model was more than half such re-validation). Bytes changed
    /// against that contract still give errors or wrong values, never a panic (every read is
    /// bounds-checked, and each payload's checksum is still checked when it is decoded).
    #[cfg(feature = "capi")]
    pub(crate) fn reopen(file: &'a [u8]) -> Result<Artifact<'a>, Error> {
        let header = Header::parse_fields(file, file.len() as u64)?;
        let (mbytes, table) = sections(file, &header);
        let count = Cursor::new(mbytes, header.metadata_offset)
            .u32("metadata entry count")
            .unwrap_or(0);
        Ok(Artifact {
            file,
            header,
            metadata: Metadata::validated(mbytes, header.metadata_offset, count),
            table,
        })
    }

    fn validate_table(&self) -> Result<(), Error> {
        let mut c = Cursor::new(self.table, self.header.table_offset);
        let mut cursor = self.header.table_end();
        let mut prev: Option<&str> = None;
        let file_len = self.header.file_len;
        for index in 0..self.header.tensor_count {
            let e = read_entry(&mut c, index, self.header.version)?;
            if let Some(p) = prev {
                if e.name.as_bytes() <= p.as_bytes() {
                    return Err(TableError::NameOrder { index }.into());
                }
            }
            prev = Some(e.name);
            let expected = payload_start(self.header.version, &e.codec, cursor);
            if e.payload_offset != expected {
                return Err(TableError::PayloadMisplaced {
                    index,
                    expected,
                    got: e.payload_offset,
                }
                .into());
            }
            let pad = self
                .file
                .get(cursor as usize..expected as usize)
                .unwrap_or(&[]);
            if let Some(i) = pad.iter().position(|&b| b != 0) {
                return Err(TableError::NonZeroPadding {
                    offset: cursor + i as u64,
                }
                .into());
            }
            let end = e
                .payload_offset
                .checked_add(e.payload_len)
                .filter(|&end| end <= file_len);
            cursor = end.ok_or(TableError::BadPayloadLen {
                index,
                expected: file_len.saturating_sub(e.payload_offset),
                got: e.payload_len,
            })?;
        }
        if c.remaining() != 0 {
            return Err(TableError::TrailingBytes {
                offset: c.offset(),
                len: c.remaining() as u64,
            }
            .into());
        }
        if cursor != file_len {
            return Err(TableError::FileLenMismatch {
                expected: cursor,
                got: file_len,
            }
            .into());
        }
        Ok(())
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn metadata(&self) -> &Metadata<'a> {
        &self.metadata
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.file
    }

    pub fn tensor_count(&self) -> u32 {
        self.header.tensor_count
    }

    /// Table entries in order.
    pub fn tensors(&self) -> Tensors<'a> {
        Tensors {
            cur: Cursor::new(self.table, self.header.table_offset),
            next: 0,
            count: self.header.tensor_count,
            version: self.header.version,
        }
    }

    /// Entry `index`. O(index) over the (validated) table.
    pub fn tensor(&self, index: u32) -> Result<TensorInfo<'a>, Error> {
        let count = self.tensor_count();
        self.tensors()
            .nth(index as usize)
            .ok_or(RequestError::NoSuchIndex { index, count }.into())
    }

    /// The entry named `name`. O(tensors).
    pub fn find(&self, name: &str) -> Result<TensorInfo<'a>, Error> {
        self.tensors()
            .find(|t| t.name == name)
            .ok_or(RequestError::NoSuchName.into())
    }

    /// The payload bytes of `info` (placement already validated).
    pub fn payload(&self, info: &TensorInfo<'_>) -> &'a [u8] {
        let s = usize::try_from(info.payload_offset).unwrap_or(usize::MAX);
        let len = usize::try_from(info.payload_len).unwrap_or(usize::MAX);
        self.file.get(s..s.saturating_add(len)).unwrap_or(&[])
    }

    /// Checks the payload checksum of `info`.
    pub fn check_payload(&self, info: &TensorInfo<'_>) -> Result<&'a [u8], Error> {
        let payload = self.payload(info);
        check_crc(info, payload)?;
        Ok(payload)
    }

    /// Checks every payload checksum.
    pub fn verify_payloads(&self) -> Result<(), Error> {
        for t in self.tensors() {
            self.check_payload(&t)?;
        }
        Ok(())
    }
}

/// Checks that `payload` is `info`'s payload: its length and CRC-32C.
fn check_crc(info: &TensorInfo<'_>, payload: &[u8]) -> Result<(), Error> {
    let computed = crc32c(payload);
    if payload.len() as u64 != info.payload_len || computed != info.payload_crc {
        return Err(Error::Payload {
            tensor: info.index,
            error: PayloadError::ChecksumMismatch {
                stored: info.payload_crc,
                computed,
            },
        });
    }
    Ok(())
}

/// The most tensors [`Artifact::groups`] puts in one group: one 8-lane stream's step is a
/// dependency chain of about 40 cycles (gather, multiply, renormalize) but a fraction of that
/// in instructions, so four in one loop keep the core busy (two 32-lane ones already do).
/// Eight measured no faster on this project's models (1.0× on the demo model, 0.94× on the
/// 4 × 192 one): the loop is then bound by its instructions.
pub const GROUP: usize = 4;

impl<'a> Artifact<'a> {
    /// Scratch bytes to give [`Artifact::decode`] for `info` (0 for `raw`; at most
    /// [`crate::limits::MAX_SCRATCH_LEN`]). It can be a little more than the format's count
    /// (FORMAT.md §8), which decodes too: with it, a 12- or 13-bit stream uses the one-load
    /// slot table.
    pub fn scratch_len(&self, info: &TensorInfo<'_>) -> Result<usize, Error> {
        codec::fast_scratch_len(info, self.payload(info)).map_err(|error| Error::Payload {
            tensor: info.index,
            error,
        })
    }

    /// The stored bytes of a `raw` tensor, checksum checked: zero-copy, 64-byte aligned in the
    /// file. Errors for other codecs.
    pub fn raw_bytes(&self, info: &TensorInfo<'_>) -> Result<&'a [u8], Error> {
        match info.codec {
            Codec::Raw => self.check_payload(info),
            _ => Err(RequestError::OutputDtype {
                logical: info.dtype as u8,
            }
            .into()),
        }
    }

    /// Reconstructs tensor `info` into `out`, which must hold exactly `numel` elements.
    /// `scratch` should hold [`Artifact::scratch_len`] bytes (the format's count, FORMAT.md
    /// §8, is enough, decoding more slowly). Checks the payload checksum first
    /// and the stream's integrity at the end; on error `out` may hold partial data.
    pub fn decode(
        &self,
        info: &TensorInfo<'_>,
        out: Output<'_>,
        scratch: &mut [u8],
    ) -> Result<(), Error> {
        self.decode_payload(info, self.payload(info), out, scratch)
    }

    /// As [`Artifact::decode`], with the payload handed in by the caller (see
    /// [`Artifact::parse_prefix`]); its length and checksum are checked against the table.
    pub fn decode_payload(
        &self,
        info: &TensorInfo<'_>,
        payload: &[u8],
        mut out: Output<'_>,
        scratch: &mut [u8],
    ) -> Result<(), Error> {
        let numel = info.numel();
        if out.len() as u64 != numel {
            return Err(RequestError::OutputLen {
                expected: numel,
                got: out.len() as u64,
            }
            .into());
        }
        check_crc(info, payload)?;
        let done = match info.codec {
            Codec::Raw => return Ok(codec::raw::decode(payload, info.dtype, &mut out)?),
            Codec::Int(p) => codec::int::decode(info, &p, payload, &mut out, scratch),
            Codec::Kmeans(p) => codec::kmeans::decode(info, &p, payload, &mut out, scratch),
            Codec::E8p(p) => codec::e8::decode_e8p(info, &p, payload, &mut out, scratch),
            Codec::E8Rans(p) => codec::e8::decode_e8_rans(info, &p, payload, &mut out, scratch),
            Codec::Lossless => codec::lossless::decode(info, payload, &mut out, scratch),
        };
        done.map_err(|error| Error::Payload {
            tensor: info.index,
            error,
        })
    }

    /// Reconstructs two tensors: exactly `[self.decode(a…), self.decode(b…)]`
    /// ([`Artifact::decode_group`] of two).
    pub fn decode_pair<'o>(
        &self,
        a: (&TensorInfo<'_>, Output<'o>, &mut [u8]),
        b: (&TensorInfo<'_>, Output<'o>, &mut [u8]),
    ) -> [Result<(), Error>; 2] {
        self.decode_group([a, b])
    }

    /// Reconstructs `N` tensors: exactly [`Artifact::decode`] of each, the same values and the
    /// same errors, each `(info, out, scratch)` as [`Artifact::decode`] takes them. Where all
    /// are `int` tensors without prototype rows whose streams have as many lanes, 8 or 32
    /// ([`Artifact::lockstep_lanes`]), and the `simd` feature is on, their streams run in lockstep,
    /// independent dependency chains in one loop
    /// ([`crate::layout::RansDecoder::decode_each`]); otherwise one after the other. Whoever
    /// decodes many tensors on one thread decodes them [`GROUP`] at a time with this, in
    /// [`Artifact::groups`] order. A sink gets each element at most once.
    pub fn decode_group<const N: usize>(
        &self,
        jobs: [(&TensorInfo<'_>, Output<'_>, &mut [u8]); N],
    ) -> [Result<(), Error>; N] {
        let mut jobs = jobs;
        let lockstep = self.int_group(jobs.each_mut().map(|(i, o, s)| {
            let payload = self.payload(i);
            (&**i, payload, codec::int::Dest::Out(o), &mut **s)
        }));
        let mut results: [Result<(), Error>; N] = core::array::from_fn(|_| Ok(()));
        match lockstep {
            // Not all plain `int` tensors, or one fails before its first symbol: one at a
            // time (nothing was written yet).
            None => {
                for ((info, out, scratch), r) in jobs.into_iter().zip(&mut results) {
                    *r = self.decode(info, out, scratch);
                }
            }
            Some(done) => {
                for (((info, _, scratch), d), r) in jobs.into_iter().zip(done).zip(&mut results) {
                    *r = self.error_of(info, scratch, d);
                }
            }
        }
        results
    }

    /// `result` of `info`'s lockstep decode, its error replaced by the one
    /// [`Artifact::decode`] reports (found by decoding again into a sink that keeps nothing,
    /// so a caller's sink still gets every element at most once).
    fn error_of(
        &self,
        info: &TensorInfo<'_>,
        scratch: &mut [u8],
        result: Result<(), PayloadError>,
    ) -> Result<(), Error> {
        let Err(error) = result else {
            return Ok(());
        };
        struct Discard;
        impl crate::output::Sink for Discard {
            fn values(&mut self, _: usize, _: &[f32]) {}
        }
        let len = usize::try_from(info.numel()).unwrap_or(0);
        let again = self.decode(
            info,
            Output::Sink {
                len,
                sink: &mut Discard,
            },
            scratch,
        );
        again.and(Err(Error::Payload {
            tensor: info.index,
            error,
        }))
    }

    /// Every tensor of the table, grouped for [`Artifact::decode_group`]
    /// ([`Artifact::group`] of them all).
    #[cfg(feature = "alloc")]
    pub fn groups(&self) -> alloc::vec::Vec<alloc::vec::Vec<u32>> {
        let all: alloc::vec::Vec<u32> = self.tensors().map(|t| t.index).collect();
        self.group(&all)
    }

    /// The tensors `indices` (indices into the table; others are left out), grouped for
    /// [`Artifact::decode_group`]: those whose streams can run in lockstep
    /// ([`Artifact::lockstep_lanes`]) in groups of their lane count, as many as one loop takes
    /// (`RansDecoder::lockstep_width`: [`GROUP`] 8-lane streams, two 32-lane ones where
    /// those pair up, see [`Artifact::lockstep_lanes`]), ordered by
    /// element count, largest first, so the streams of a group are about as long (the
    /// lockstep part is the shortest one), and among tensors of one count by row length (a
    /// clustered stream's lockstep steps end at its rows' ends); the rest (other codecs, prototype rows, a stream
    /// left alone) one to a group. The groups come largest first; ties keep the order of
    /// `indices`, so the groups depend only on the artifact, `indices` and whether this CPU
    /// pairs 32-lane streams (`RansDecoder::rows_pair_up`); the values decoded never do.
    #[cfg(feature = "alloc")]
    pub fn group(&self, indices: &[u32]) -> alloc::vec::Vec<alloc::vec::Vec<u32>> {
        self.group_with(indices, |t| self.lockstep_lanes(t))
    }

    /// [`Artifact::group`] with each tensor's lockstep lanes from `lanes` (where the payloads
    /// are not in memory, [`Artifact::lockstep_lanes_in`] of each payload read).
    #[cfg(feature = "alloc")]
    pub fn group_with(
        &self,
        indices: &[u32],
        mut lanes: impl FnMut(&TensorInfo<'_>) -> usize,
    ) -> alloc::vec::Vec<alloc::vec::Vec<u32>> {
        use alloc::vec::Vec;
        use core::cmp::Reverse;
        let tensors: Vec<TensorInfo<'_>> = self.tensors().collect();
        let mut order: Vec<(usize, u64, u64, usize, u32)> = indices
            .iter()
            .enumerate()
            .filter_map(|(k, &i)| {
                let t = tensors.get(i as usize)?;
                Some((lanes(t), t.numel(), t.rows_cols().1, k, i))
            })
            .collect();
        // Among tensors of one size, those of one row length together: a row's end (where a
        // clustered stream switches tables) then ends the lockstep step of every stream at
        // once, and longer rows mean fewer steps.
        order.sort_by_key(|&(lanes, n, cols, k, _)| (lanes, Reverse(n), cols, k));
        let mut groups: Vec<(u64, usize, Vec<u32>)> = Vec::new();
        for same in order.chunk_by(|a, b| a.0 == b.0) {
            let width = crate::layout::RansDecoder::lockstep_width(same[0].0);
            for c in same.chunks(width.clamp(1, GROUP)) {
                if c.len() > 1 && c[0].0 > 0 {
                    groups.push((c[0].1, c[0].3, c.iter().map(|&(.., i)| i).collect()));
                } else {
                    groups.extend(c.iter().map(|&(_, n, _, k, i)| (n, k, alloc::vec![i])));
                }
            }
        }
        groups.sort_by_key(|&(n, k, _)| (Reverse(n), k));
        groups.into_iter().map(|(.., g)| g).collect()
    }

    /// [`Artifact::decode_group`] of as many tensors as `jobs` holds (a group of
    /// [`Artifact::groups`]; more than [`GROUP`] go in groups of [`GROUP`]): each one's
    /// result, in order.
    #[cfg(feature = "alloc")]
    pub fn decode_any<'o>(
        &self,
        jobs: alloc::vec::Vec<(&TensorInfo<'_>, Output<'o>, &mut [u8])>,
    ) -> alloc::vec::Vec<Result<(), Error>> {
        struct Decode<'x, 'a>(&'x Artifact<'a>);
        impl<'o, 'i, 's> ByCount<(&'i TensorInfo<'i>, Output<'o>, &'s mut [u8]), Result<(), Error>>
            for Decode<'_, '_>
        {
            fn all<const M: usize>(
                &mut self,
                jobs: [(&'i TensorInfo<'i>, Output<'o>, &'s mut [u8]); M],
            ) -> [Result<(), Error>; M] {
                self.0.decode_group(jobs)
            }
        }
        by_count(jobs, &mut Decode(self))
    }

    /// [`Artifact::decode_group_to_vec`] of as many tensors as `infos` holds (a group of
    /// [`Artifact::groups`]; more than [`GROUP`] go in groups of [`GROUP`]): the same bytes and
    /// errors as [`Artifact::decode_to_vec`] of each, in order.
    #[cfg(feature = "alloc")]
    pub fn decode_any_to_vec(
        &self,
        infos: &[&TensorInfo<'_>],
    ) -> alloc::vec::Vec<Result<alloc::vec::Vec<u8>, Error>> {
        struct ToVec<'x, 'a>(&'x Artifact<'a>);
        impl<'t> ByCount<&'t TensorInfo<'t>, Result<alloc::vec::Vec<u8>, Error>> for ToVec<'_, '_> {
            fn all<const M: usize>(
                &mut self,
                infos: [&'t TensorInfo<'t>; M],
            ) -> [Result<alloc::vec::Vec<u8>, Error>; M] {
                self.0.decode_group_to_vec(infos)
            }
        }
        by_count(infos.to_vec(), &mut ToVec(self))
    }

    /// The lane count of `info`'s stream where [`Artifact::decode_group`] can run it in
    /// lockstep beside other tensors' streams of as many lanes (an `int` tensor without
    /// prototype rows, with the `simd` feature: `codec::int::pairable`; a 32-lane one only
    /// where two run faster side by side on the row kernel than alone, an int6 stream of up
    /// to 11 bits where the kernels without a gather run: `RansDecoder::rows_pair_up`); 0
    /// otherwise.
    pub fn lockstep_lanes(&self, info: &TensorInfo<'_>) -> usize {
        self.lockstep_lanes_in(info, self.payload(info))
    }

    /// [`Artifact::lockstep_lanes`] with the payload handed in by the caller (see
    /// [`Artifact::parse_prefix`]).
    pub fn lockstep_lanes_in(&self, info: &TensorInfo<'_>, payload: &[u8]) -> usize {
        match info.codec {
            Codec::Int(p) => codec::int::pairable(info, &p, payload)
                .map_or(0, |parts| parts.stream.lanes as usize),
            _ => 0,
        }
    }

    /// [`Artifact::decode_to_vec`] of two tensors through [`Artifact::decode_pair`]: the same
    /// bytes and errors as two calls.
    #[cfg(feature = "alloc")]
    pub fn decode_pair_to_vec(
        &self,
        a: &TensorInfo<'_>,
        b: &TensorInfo<'_>,
    ) -> [Result<alloc::vec::Vec<u8>, Error>; 2] {
        self.decode_group_to_vec([a, b])
    }

    /// [`Artifact::decode_to_vec`] of `N` tensors through [`Artifact::decode_group`]: the
    /// same bytes and errors as `N` calls.
    #[cfg(feature = "alloc")]
    pub fn decode_group_to_vec<const N: usize>(
        &self,
        infos: [&TensorInfo<'_>; N],
    ) -> [Result<alloc::vec::Vec<u8>, Error>; N] {
        let one_by_one = || infos.map(|t| self.decode_to_vec(t));
        if infos.iter().any(|t| !matches!(t.codec, Codec::Int(_))) {
            return one_by_one();
        }
        let jobs = infos.iter().map_while(|t| VecJob::new(self, t));
        let Some(mut jobs) = crate::array_of::<VecJob, N>(jobs) else {
            return one_by_one();
        };
        let mut sinks = jobs.iter_mut().zip(infos).map(|(j, t)| {
            let VecJob { out, scratch, len } = j;
            let sink = crate::output::LogicalBytes::new(t.dtype, |x| out.extend_from_slice(x));
            (t, sink, &mut scratch[..], *len)
        });
        let Some(mut sinks) = crate::array_of::<_, N>(&mut sinks) else {
            return one_by_one();
        };
        let group = sinks.each_mut().map(|(t, sink, scratch, len)| {
            let out = Output::Sink { len: *len, sink };
            (&**t, out, &mut **scratch)
        });
        let done = self.decode_group(group);
        let mut outs = jobs.into_iter().map(|j| j.out);
        // Every result takes its own tensor's bytes (an error's too, to drop them).
        done.map(|d| {
            let out = outs.next().unwrap_or_default();
            d.map(|()| out)
        })
    }

    /// The lockstep path of [`Artifact::decode_group`]: each tensor's result, or `None` where
    /// it does not apply (fewer than two tensors, or not all pairable) or one fails before
    /// writing (a checksum, a payload's checks).
    pub(crate) fn int_group<'p, const N: usize>(
        &self,
        jobs: [(
            &TensorInfo<'_>,
            &'p [u8],
            codec::int::Dest<'_, '_>,
            &mut [u8],
        ); N],
    ) -> Option<[Result<(), PayloadError>; N]> {
        // One tensor has nothing to run beside: its own decode, without parsing its headers
        // here first (a 32-lane tensor's would be parsed twice).
        if N < 2 {
            return None;
        }
        // Each tensor's parts, in place (a stream header holds its frequency tables).
        let mut parts: [Option<codec::int::Parts<'p>>; N] = [const { None }; N];
        for ((info, payload, out, _), p) in jobs.iter().zip(&mut parts) {
            let Codec::Int(params) = info.codec else {
                return None;
            };
            if !out.fits(info) {
                return None;
            }
            codec::int::pairable_in(info, &params, payload, p);
        }
        let lanes = parts
            .first()
            .and_then(|p| p.as_ref())
            .map(|p| p.stream.lanes);
        let lanes_match = |p: &Option<codec::int::Parts<'_>>| {
            p.as_ref().is_some_and(|p| Some(p.stream.lanes) == lanes)
        };
        if !parts.iter().all(lanes_match) {
            return None;
        }
        if jobs
            .iter()
            .any(|(info, payload, ..)| check_crc(info, payload).is_err())
        {
            return None;
        }
        let group = jobs
            .into_iter()
            .zip(&parts)
            .filter_map(|((info, _, out, scratch), p)| {
                let Codec::Int(params) = info.codec else {
                    return None;
                };
                Some(codec::int::Job {
                    info,
                    params,
                    parts: p.as_ref()?,
                    out,
                    scratch,
                })
            });
        codec::int::decode_group(crate::array_of(group)?)
    }

    /// The symbols and row scales of an `int` tensor (FORMAT.md §5.2), for callers that keep
    /// weights compact and dequantize them where they use them: weight `(r, c)` is
    /// `(symbols[r·cols + c] as f32 − qmax) × scales[r]`, bit for bit what [`Artifact::decode`]
    /// gives in f32. `payload` as for [`Artifact::decode_payload`] (`None`: from the
    /// artifact). Returns the codec's parameters; errors for other codecs.
    pub fn decode_int_symbols(
        &self,
        info: &TensorInfo<'_>,
        payload: Option<&[u8]>,
        symbols: &mut [u8],
        scales: &mut [f32],
        scratch: &mut [u8],
    ) -> Result<crate::table::IntParams, Error> {
        let Codec::Int(p) = info.codec else {
            return Err(RequestError::WrongCodec {
                codec: info.codec.id(),
            }
            .into());
        };
        let (rows, _) = info.rows_cols();
        for (expected, got) in [(info.numel(), symbols.len()), (rows, scales.len())] {
            if got as u64 != expected {
                return Err(RequestError::OutputLen {
                    expected,
                    got: got as u64,
                }
                .into());
            }
        }
        let payload = payload.unwrap_or_else(|| self.payload(info));
        check_crc(info, payload)?;
        codec::int::decode_symbols(info, &p, payload, symbols, scales, scratch).map_err(
            |error| Error::Payload {
                tensor: info.index,
                error,
            },
        )?;
        Ok(p)
    }

    /// [`Artifact::decode_int_symbols`] of `N` tensors: the same symbols, scales, parameters
    /// and errors as `N` calls. Where [`Artifact::decode_group`] would run their streams in
    /// lockstep (plain `int` tensors with as many lanes, the `simd` feature on), so does this;
    /// otherwise one after the other. Whoever keeps many tensors compact decodes them
    /// [`GROUP`] at a time with this, in [`Artifact::groups`] order.
    pub fn decode_int_symbols_group<const N: usize>(
        &self,
        mut jobs: [IntSymbols<'_, '_>; N],
    ) -> [Result<crate::table::IntParams, Error>; N] {
        let lockstep = self.int_group(jobs.each_mut().map(|j| {
            let payload = j.payload.unwrap_or_else(|| self.payload(j.info));
            let out = codec::int::Dest::Symbols {
                symbols: &mut *j.symbols,
                scales: &mut *j.scales,
            };
            (j.info, payload, out, &mut *j.scratch)
        }));
        let one = |j: IntSymbols<'_, '_>| {
            self.decode_int_symbols(j.info, j.payload, j.symbols, j.scales, j.scratch)
        };
        let Some(done) = lockstep else {
            // Not all plain `int` tensors, or one fails before its first symbol: one at a
            // time (nothing was written yet).
            return jobs.map(one);
        };
        let mut done = done.into_iter();
        jobs.map(|j| match (done.next(), j.info.codec) {
            (Some(Ok(())), Codec::Int(p)) => Ok(p),
            // The error one call reports (the lockstep one where, impossibly, it finds none).
            (d, _) => {
                let tensor = j.info.index;
                let error = d.and_then(Result::err);
                one(j).and_then(|p| match error {
                    Some(error) => Err(Error::Payload { tensor, error }),
                    None => Ok(p),
                })
            }
        })
    }

    /// [`Artifact::decode_int_symbols_group`] of as many tensors as `jobs` holds (a group of
    /// [`Artifact::groups`]; more than [`GROUP`] go in groups of [`GROUP`]): each one's
    /// result, in order.
    #[cfg(feature = "alloc")]
    pub fn decode_int_symbols_any<'j, 't>(
        &self,
        jobs: alloc::vec::Vec<IntSymbols<'j, 't>>,
    ) -> alloc::vec::Vec<Result<crate::table::IntParams, Error>> {
        struct Symbols<'x, 'a>(&'x Artifact<'a>);
        impl<'j, 't> ByCount<IntSymbols<'j, 't>, Result<crate::table::IntParams, Error>>
            for Symbols<'_, '_>
        {
            fn all<const M: usize>(
                &mut self,
                jobs: [IntSymbols<'j, 't>; M],
            ) -> [Result<crate::table::IntParams, Error>; M] {
                self.0.decode_int_symbols_group(jobs)
            }
        }
        by_count(jobs, &mut Symbols(self))
    }

    /// Convenience: decode to `f32`.
    pub fn decode_f32(
        &self,
        info: &TensorInfo<'_>,
        out: &mut [f32],
        scratch: &mut [u8],
    ) -> Result<(), Error> {
        self.decode(info, Output::F32(out), scratch)
    }

    /// Bytes of `info`'s reconstruction in its logical dtype (what
    /// [`Artifact::decode_to_vec`] returns), saturating.
    pub fn logical_len(info: &TensorInfo<'_>) -> u64 {
        info.numel().saturating_mul(info.dtype.size() as u64)
    }

    /// Reconstructs into a new vector of the tensor's logical dtype as little-endian bytes
    /// (what `pcll unpack` writes). The one allocation is [`Artifact::logical_len`] bytes, made
    /// with `try_reserve`: when memory cannot be had the result is
    /// [`RequestError::OutOfMemory`], never an abort. The decode writes into it directly.
    #[cfg(feature = "alloc")]
    pub fn decode_to_vec(&self, info: &TensorInfo<'_>) -> Result<alloc::vec::Vec<u8>, Error> {
        let bytes = Artifact::logical_len(info);
        let oom = || Error::from(RequestError::OutOfMemory { bytes });
        let mut out = alloc::vec::Vec::new();
        out.try_reserve_exact(usize::try_from(bytes).map_err(|_| oom())?)
            .map_err(|_| oom())?;
        if let Codec::Raw = info.codec {
            out.extend_from_slice(self.raw_bytes(info)?);
            return Ok(out);
        }
        let mut scratch = alloc::vec::Vec::new();
        let scratch_len = self.scratch_len(info)?;
        scratch.try_reserve_exact(scratch_len).map_err(|_| oom())?;
        scratch.resize(scratch_len, 0);
        let mut sink = crate::output::LogicalBytes::new(info.dtype, |b| out.extend_from_slice(b));
        let len = usize::try_from(info.numel()).map_err(|_| oom())?;
        self.decode(
            info,
            Output::Sink {
                len,
                sink: &mut sink,
            },
            &mut scratch,
        )?;
        Ok(out)
    }
}

/// One tensor of [`Artifact::decode_int_symbols_group`]: what
/// [`Artifact::decode_int_symbols`] takes.
#[derive(Debug)]
pub struct IntSymbols<'j, 't> {
    pub info: &'j TensorInfo<'t>,
    /// The tensor's payload, where the caller read it itself (`None`: from the artifact).
    pub payload: Option<&'j [u8]>,
    /// `numel` symbols.
    pub symbols: &'j mut [u8],
    /// One scale a row.
    pub scales: &'j mut [f32],
    pub scratch: &'j mut [u8],
}

/// A function of `M` items at once, for every `M` ([`by_count`]).
#[cfg(feature = "alloc")]
trait ByCount<J, R> {
    fn all<const M: usize>(&mut self, items: [J; M]) -> [R; M];
}

/// `f.all` of `items` in groups of [`GROUP`], each group an array of its own length (the
/// last may be shorter): the results in order.
#[cfg(feature = "alloc")]
fn by_count<J, R>(items: alloc::vec::Vec<J>, f: &mut impl ByCount<J, R>) -> alloc::vec::Vec<R> {
    fn run<J, R, const M: usize>(
        group: heapless::Vec<J, GROUP>,
        f: &mut impl ByCount<J, R>,
        results: &mut alloc::vec::Vec<R>,
    ) {
        if let Ok(items) = group.into_array::<M>() {
            results.extend(f.all(items));
        }
    }
    let mut results = alloc::vec::Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let group: heapless::Vec<J, GROUP> = items.by_ref().take(GROUP).collect();
        let r = &mut results;
        match group.len() {
            1 => run::<J, R, 1>(group, f, r),
            2 => run::<J, R, 2>(group, f, r),
            3 => run::<J, R, 3>(group, f, r),
            _ => run::<J, R, 4>(group, f, r),
        }
    }
    results
}

const _: () = assert!(GROUP == 4, "by_count has an arm for each group size");

/// The buffers [`Artifact::decode_to_vec`] allocates for one tensor of a pair.
#[cfg(feature = "alloc")]
struct VecJob {
    out: alloc::vec::Vec<u8>,
    scratch: alloc::vec::Vec<u8>,
    len: usize,
}

#[cfg(feature = "alloc")]
impl VecJob {
    /// Room for `info`'s logical bytes and its scratch; `None` where `decode_to_vec` would
    /// fail before decoding (it then reports why).
    fn new(art: &Artifact<'_>, info: &TensorInfo<'_>) -> Option<VecJob> {
        let bytes = usize::try_from(Artifact::logical_len(info)).ok()?;
        let len = usize::try_from(info.numel()).ok()?;
        let scratch_len = art.scratch_len(info).ok()?;
        let mut out = alloc::vec::Vec::new();
        out.try_reserve_exact(bytes).ok()?;
        let mut scratch = alloc::vec::Vec::new();
        scratch.try_reserve_exact(scratch_len).ok()?;
        scratch.resize(scratch_len, 0);
        Some(VecJob { out, scratch, len })
    }
}

/// Iterator over the validated tensor table.
#[derive(Debug, Clone)]
pub struct Tensors<'a> {
    cur: Cursor<'a>,
    next: u32,
    count: u32,
    version: u16,
}

impl<'a> Iterator for Tensors<'a> {
    type Item = TensorInfo<'a>;
    fn next(&mut self) -> Option<TensorInfo<'a>> {
        if self.next >= self.count {
            return None;
        }
        let e = read_entry(&mut self.cur, self.next, self.version).ok();
        self.next += 1;
        e
    }
}

/// Absolute offset where payloads may start for a table ending at `table_end` (the first
/// payload's offset in a file of version ≤ 3, or of a `raw` first payload).
pub fn payload_region_start(table_end: u64) -> u64 {
    align_up(table_end.max(HEADER_LEN as u64))
}

/// Where a payload of `codec` starts when the previous section ends at `cursor` (FORMAT.md
/// §7.1): 64-byte aligned in versions 1–3 and for `raw` payloads (used in place from a
/// memory map); from version 4 every other payload follows the previous one directly.
pub fn payload_start(version: u16, codec: &Codec, cursor: u64) -> u64 {
    if version >= 4 && !matches!(codec, Codec::Raw) {
        cursor
    } else {
        align_up(cursor)
    }
}
