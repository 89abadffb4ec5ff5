#![allow(
    clippy::needless_range_loop,
    reason = "support positions index z, the columns and the partials together"
)]
//! The CPU engine's support products in O(n·|T|): `q = A_T z` (optionally minus y), `A_Tᵀ r`, and
//! both in one pass over the rows — the support phase's inner step (`q = A_T g` and `A_Tᵀ q`
//! while each block of rows is in cache, SPEC §6).
//!
//! Rows go in fixed chunks of [`PASS_ROWS`] in parallel. Inside a chunk, 32 rows at a time
//! stay in registers ([`Rows32`]) while every neuron of T adds its term under its mask bits
//! (neurons whose 32 bits are all zero are skipped); the adjoint then reads the chunk's `q` from
//! L1 for each support entry. Per entry and chunk the 32 f32 lanes are folded to 16 and summed
//! in f64; chunk partials are summed in f64 in chunk order. Every instruction-set path does the
//! same operations in the same order, so results are bitwise the same on each and independent of
//! the thread count.

use super::relu_mask::Masks;
use super::simd::{Isa, Portable, Rows32};
use crate::problem::operator::{Generators, Operator, Support};
use rayon::prelude::*;

/// Rows per chunk. At d = 100 a chunk's columns of X (400 KiB) and its mask words stay in L2
/// through the forward and the adjoint halves of a pass; with wide supports (an INR's
/// |T| = 16 000 over 2048-row batches) the per-entry cost of folding each chunk's lanes is paid
/// a quarter as often as with 256-row chunks (a streamed fit 15 % faster, d = 100 unchanged).
pub const PASS_ROWS: usize = 1024;
const WORDS: usize = PASS_ROWS / 64;
/// 32-row blocks the forward half keeps in registers at once (four: measured faster than two on
/// Zen 4 with AVX-512 and with AVX2, spills included).
const FWD_BLOCKS: usize = 4;
/// Support entries the adjoint half sums at once.
const ADJ_ENTRIES: usize = 4;

/// The masks of a support laid out chunk by chunk, and inside a chunk by pairs of words (128
/// rows) run after run: word w of run k in chunk c is `bits[c·runs·WORDS + word(runs, k, w)]`.
/// A chunk reads one contiguous block; the forward half, which takes 128 rows of every run in
/// turn, reads it in order, and the adjoint's consecutive entries share cache lines.
#[derive(Debug, Default)]
pub struct ChunkMasks {
    runs: usize,
    bits: Vec<u64>,
    /// Runs that share one mask and one column (see [`ChunkMasks::with_classes`]): the first
    /// run's index, and the support positions of all.
    classes: Vec<(usize, Vec<usize>)>,
    /// Per run, whether it belongs to a class (then the class computes it).
    in_class: Vec<bool>,
}

impl ChunkMasks {
    pub fn new(masks: &Masks, runs: usize) -> Self {
        let chunks = masks.words.div_ceil(WORDS);
        let mut bits = vec![0u64; chunks * runs * WORDS];
        if runs > 0 {
            bits.par_chunks_mut(runs * WORDS)
                .enumerate()
                .for_each(|(c, out)| {
                    for k in 0..runs {
                        let src = &masks.run(k)[c * WORDS..((c + 1) * WORDS).min(masks.words)];
                        for (w, &v) in src.iter().enumerate() {
                            out[word(runs, k, w)] = v;
                        }
                    }
                });
        }
        Self {
            runs,
            bits,
            classes: Vec::new(),
            in_class: vec![false; runs],
        }
    }

    /// Groups the support's single-weight neurons whose masks and columns coincide: under
    /// `h = w`, a neuron whose generator is one weight `a` at input i, and whose support entry is
    /// at the same input i, has the term `1{sign(a)·X[:, i] > 0} ∘ X[:, i]` — the same for every
    /// such neuron with the same (i, sign), as long as no product `a·X[r, i]` rounds to zero. A
    /// class adds its summed coefficient once in `A_T z`, and its entries share one `A_Tᵀ r`.
    pub fn with_classes(mut self, op: &Operator, t: &Support) -> Self {
        let Generators::Weights(w) = op.generators() else {
            return self;
        };
        let d = op.d() as u32;
        let data = op.data();
        let mut class_of: std::collections::HashMap<(u32, bool), usize> = Default::default();
        let mut classes: Vec<(usize, Vec<usize>)> = Vec::new();
        for (k, &(j, s, e)) in t.runs.iter().enumerate() {
            if e - s != 1 {
                continue;
            }
            let range = w.range(j * d, (j + 1) * d);
            if range.len() != 1 {
                continue;
            }
            let (c, a) = (w.indices()[range.start] % d, w.values()[range.start]);
            let safe = a.abs() * data.min_nonzero_abs(c as usize) >= f32::MIN_POSITIVE;
            if !safe || t.idx[s] % d != c {
                continue;
            }
            match class_of.get(&(c, a > 0.0)) {
                Some(&i) => classes[i].1.push(s),
                None => {
                    class_of.insert((c, a > 0.0), classes.len());
                    classes.push((k, vec![s]));
                }
            }
        }
        classes.retain(|(_, ps)| ps.len() > 1);
        for (k, ps) in &classes {
            self.in_class[*k] = true;
            for &p in &ps[1..] {
                // The run of a single-weight entry at position p.
                let run = t.runs.partition_point(|&(_, s, _)| s <= p) - 1;
                self.in_class[run] = true;
            }
        }
        self.classes = classes;
        self
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bits.len() * 8
    }

    /// Support entries computed through a shared class.
    pub fn entries_in_classes(&self) -> usize {
        self.classes.iter().map(|(_, ps)| ps.len()).sum()
    }

    fn chunk(&self, c: usize) -> &[u64] {
        &self.bits[c * self.runs * WORDS..(c + 1) * self.runs * WORDS]
    }
}

/// Position of word `w` (< WORDS) of run `k` in a chunk's block of `runs` runs.
#[inline(always)]
fn word(runs: usize, k: usize, w: usize) -> usize {
    (w / 2) * runs * 2 + k * 2 + w % 2
}

/// What a pass computes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// `q = A_T z` (minus y).
    Forward,
    /// `A_Tᵀ q` of a given q.
    Adjoint,
    /// Both.
    Both,
}

/// `out = A_T z`, minus y when `residual`.
pub fn forward(
    op: &Operator,
    t: &Support,
    masks: &ChunkMasks,
    z: &[f32],
    residual: bool,
    out: &mut [f32],
) {
    run(
        Isa::current(),
        op,
        t,
        masks,
        Some(z),
        residual,
        Want::Forward,
        out,
        None,
    );
}

/// `out = A_Tᵀ r`.
pub fn adjoint(op: &Operator, t: &Support, masks: &ChunkMasks, r: &[f32], out: &mut [f32]) {
    let mut q = r.to_vec();
    run(
        Isa::current(),
        op,
        t,
        masks,
        None,
        false,
        Want::Adjoint,
        &mut q,
        Some(out),
    );
}

/// `q = A_T z` (minus y when `residual`) and `h = A_Tᵀ q` in one pass.
pub fn forward_adjoint(
    op: &Operator,
    t: &Support,
    masks: &ChunkMasks,
    z: &[f32],
    residual: bool,
    q: &mut [f32],
    h: &mut [f32],
) {
    forward_adjoint_on(Isa::current(), op, t, masks, z, residual, q, h);
}

/// [`forward_adjoint`] on the instruction set `isa` (for tests and comparisons: every path gives
/// the same bits). Panics when the processor lacks `isa`.
#[allow(clippy::too_many_arguments)] // forward_adjoint's arguments and the instruction set
pub fn forward_adjoint_on(
    isa: Isa,
    op: &Operator,
    t: &Support,
    masks: &ChunkMasks,
    z: &[f32],
    residual: bool,
    q: &mut [f32],
    h: &mut [f32],
) {
    assert!(
        isa <= Isa::detected(),
        "{} is not available here",
        isa.name()
    );
    run(isa, op, t, masks, Some(z), residual, Want::Both, q, Some(h));
}

#[allow(clippy::too_many_arguments)] // the pass's inputs and outputs
fn run(
    isa: Isa,
    op: &Operator,
    t: &Support,
    masks: &ChunkMasks,
    z: Option<&[f32]>,
    residual: bool,
    want: Want,
    q: &mut [f32],
    h: Option<&mut [f32]>,
) {
    let data = op.data();
    // The kernels' unchecked loads rely on these: every chunk lies within every column.
    assert_eq!(q.len(), data.n(), "q has the data's rows");
    assert_eq!(
        z.map_or(t.len(), <[f32]>::len),
        t.len(),
        "z has the support's entries"
    );
    let y = residual.then(|| data.y());
    // Each entry's column as an offset into X (column-major), computed once per pass.
    let d = data.d();
    let ld = data.ld();
    let cols: Vec<usize> = t.idx.iter().map(|&c| (c as usize % d) * ld).collect();
    let class_z: Vec<f32> = match z {
        Some(z) => masks
            .classes
            .iter()
            .map(|(_, ps)| ps.iter().fold(0.0f32, |acc, &p| acc + z[p]))
            .collect(),
        None => Vec::new(),
    };
    let groups = if want == Want::Forward {
        AdjointGroups::default()
    } else {
        AdjointGroups::new(t, &cols, &masks.in_class)
    };
    let chunk = |ci: usize, q: &mut [f32], part: &mut [f64]| {
        let c = Chunk {
            xt: data.xt(),
            cols: &cols,
            groups: &groups,
            t,
            masks: masks.chunk(ci),
            classes: &masks.classes,
            in_class: &masks.in_class,
            class_z: &class_z,
            z: z.unwrap_or(&[]),
            y,
            r0: ci * PASS_ROWS,
            want,
        };
        c.dispatch(isa, q, part);
    };
    match h {
        None => q
            .par_chunks_mut(PASS_ROWS)
            .enumerate()
            .for_each(|(ci, q)| chunk(ci, q, &mut [])),
        Some(h) => {
            debug_assert_eq!(h.len(), t.len());
            let partials: Vec<Vec<f64>> = q
                .par_chunks_mut(PASS_ROWS)
                .enumerate()
                .map(|(ci, q)| {
                    let mut part = vec![0.0f64; t.len()];
                    chunk(ci, q, &mut part);
                    part
                })
                .collect();
            let mut acc = vec![0.0f64; t.len()];
            for part in &partials {
                for (a, &p) in acc.iter_mut().zip(part) {
                    *a += p;
                }
            }
            for (o, a) in h.iter_mut().zip(acc) {
                *o = a as f32;
            }
        }
    }
}

/// The support entries the adjoint half sums (those not computed through a class), in groups of
/// [`ADJ_ENTRIES`] (run, position) pairs: first groups whose entries share one column of X (one
/// load of X serves all, entries sorted by column), then groups of the rest, then single entries.
/// Each entry's sum is the same in any group.
#[derive(Default)]
struct AdjointGroups {
    shared: Vec<[(usize, usize); ADJ_ENTRIES]>,
    mixed: Vec<[(usize, usize); ADJ_ENTRIES]>,
    single: Vec<(usize, usize)>,
}

impl AdjointGroups {
    fn new(t: &Support, cols: &[usize], in_class: &[bool]) -> Self {
        let mut entries: Vec<(usize, usize)> = t
            .runs
            .iter()
            .enumerate()
            .filter(|&(k, _)| !in_class[k])
            .flat_map(|(k, &(_, s, e))| (s..e).map(move |p| (k, p)))
            .collect();
        entries.sort_by_key(|&(_, p)| cols[p]);
        let mut g = Self::default();
        let mut rest = Vec::new();
        for same in entries.chunk_by(|a, b| cols[a.1] == cols[b.1]) {
            let mut quads = same.chunks_exact(ADJ_ENTRIES);
            for quad in quads.by_ref() {
                g.shared.push(quad.try_into().expect("a group"));
            }
            rest.extend_from_slice(quads.remainder());
        }
        let mut quads = rest.chunks_exact(ADJ_ENTRIES);
        for quad in quads.by_ref() {
            g.mixed.push(quad.try_into().expect("a group"));
        }
        g.single = quads.remainder().to_vec();
        g
    }
}

/// One chunk's work: rows `r0..r0 + q.len()`.
struct Chunk<'a> {
    /// X column-major, and each support entry's column offset into it.
    xt: &'a [f32],
    cols: &'a [usize],
    groups: &'a AdjointGroups,
    t: &'a Support,
    masks: &'a [u64],
    classes: &'a [(usize, Vec<usize>)],
    in_class: &'a [bool],
    /// Per class, the sum of its entries' z (in support order).
    class_z: &'a [f32],
    z: &'a [f32],
    y: Option<&'a [f32]>,
    r0: usize,
    want: Want,
}

impl Chunk<'_> {
    fn dispatch(&self, isa: Isa, q: &mut [f32], part: &mut [f64]) {
        // SAFETY: `Isa::current` only names instruction sets this processor has.
        unsafe {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => self.avx512(q, part),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => self.avx2(q, part),
                _ => self.body::<Portable>(q, part),
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(&self, q: &mut [f32], part: &mut [f64]) {
        unsafe { self.body::<super::simd::Avx512>(q, part) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(&self, q: &mut [f32], part: &mut [f64]) {
        unsafe { self.body::<super::simd::Avx2>(q, part) }
    }

    /// The 32 mask bits of run `k` at chunk row `b` (a multiple of 32).
    #[inline(always)]
    fn bits32(&self, k: usize, b: usize) -> u32 {
        (self.masks[word(self.t.runs.len(), k, b / 64)] >> (b % 64)) as u32
    }

    #[inline(always)]
    fn bit(&self, k: usize, b: usize) -> bool {
        (self.masks[word(self.t.runs.len(), k, b / 64)] >> (b % 64)) & 1 == 1
    }

    /// Column of support entry p, from this chunk's first row on.
    #[inline(always)]
    fn col(&self, p: usize) -> &[f32] {
        &self.xt[self.cols[p] + self.r0..]
    }

    /// Pointer to 32 rows of entry p's column from chunk row `b`.
    ///
    /// # Safety
    /// `b + 32` must not exceed the chunk's rows (so the rows lie within the column).
    #[inline(always)]
    unsafe fn x32(&self, p: usize, b: usize) -> *const f32 {
        unsafe {
            self.xt
                .as_ptr()
                .add(*self.cols.get_unchecked(p) + self.r0 + b)
        }
    }

    /// # Safety
    /// `V`'s instruction set must be available.
    #[inline(always)]
    unsafe fn body<V: Rows32>(&self, q: &mut [f32], part: &mut [f64]) {
        let rows = q.len();
        let full = rows / 32 * 32;
        let runs = &self.t.runs;
        if self.want != Want::Adjoint {
            // Blocks of FWD_BLOCKS × 32 rows first (independent accumulators, so the FMAs of one
            // run do not wait on each other), then single 32-row blocks; each row's sum runs over
            // the runs in the same order either way, so the results do not depend on the blocking.
            let step = 32 * FWD_BLOCKS;
            let wide = full / step * step;
            for b in (0..wide).step_by(step) {
                // SAFETY: b + step ≤ full ≤ the chunk's rows.
                unsafe { self.forward_rows::<V, FWD_BLOCKS>(b, q) };
            }
            for b in (wide..full).step_by(32) {
                // SAFETY: b + 32 ≤ full.
                unsafe { self.forward_rows::<V, 1>(b, q) };
            }
            // The last rows one at a time, with the lanes' operations.
            let z = self.z;
            for b in full..rows {
                let mut acc = 0.0f32;
                for (k, &(_, s, e)) in runs.iter().enumerate() {
                    if !self.bit(k, b) || self.in_class[k] {
                        continue;
                    }
                    if e - s == 1 {
                        acc = self.col(s)[b].mul_add(z[s], acc);
                    } else {
                        let mut tmp = self.col(s)[b] * z[s];
                        for p in s + 1..e {
                            tmp = self.col(p)[b].mul_add(z[p], tmp);
                        }
                        acc += tmp;
                    }
                }
                for ((k, ps), &zc) in self.classes.iter().zip(self.class_z) {
                    if self.bit(*k, b) {
                        acc = self.col(ps[0])[b].mul_add(zc, acc);
                    }
                }
                if let Some(y) = self.y {
                    acc -= y[self.r0 + b];
                }
                q[b] = acc;
            }
        }
        if self.want == Want::Forward {
            return;
        }
        // Entries ADJ_ENTRIES at a time (independent accumulators sharing each load of q, and of
        // X where they share a column); each entry's sum is the same as alone.
        for (groups, shared) in [(&self.groups.shared, true), (&self.groups.mixed, false)] {
            for group in groups {
                let (ks, ps) = (group.map(|g| g.0), group.map(|g| g.1));
                let v = unsafe {
                    if shared {
                        self.adjoint_entries::<V, ADJ_ENTRIES, true>(ks, ps, full, q)
                    } else {
                        self.adjoint_entries::<V, ADJ_ENTRIES, false>(ks, ps, full, q)
                    }
                };
                for (&p, v) in ps.iter().zip(v) {
                    part[p] = v;
                }
            }
        }
        for &(k, p) in &self.groups.single {
            part[p] = unsafe { self.adjoint_entries::<V, 1, false>([k], [p], full, q) }[0];
        }
        for (k, ps) in self.classes {
            let [v] = unsafe { self.adjoint_entries::<V, 1, false>([*k], [ps[0]], full, q) };
            for &p in ps {
                part[p] = v;
            }
        }
    }

    /// `q` at rows `b .. b + 32·B` of the chunk: per row, the runs' terms under their mask bits in
    /// support order (runs in a class once, with the class's summed coefficient), minus y.
    ///
    /// # Safety
    /// `V`'s instruction set must be available and `b + 32·B` at most the chunk's rows.
    #[inline(always)]
    unsafe fn forward_rows<V: Rows32, const B: usize>(&self, b: usize, q: &mut [f32]) {
        let z = self.z;
        let mut acc = [unsafe { V::zero() }; B];
        for (k, &(_, s, e)) in self.t.runs.iter().enumerate() {
            if self.in_class[k] {
                continue;
            }
            let bits: [u32; B] = std::array::from_fn(|i| self.bits32(k, b + 32 * i));
            if bits.iter().all(|&w| w == 0) {
                continue;
            }
            // A block whose bits are all zero adds nothing: acc starts at +0 and never becomes
            // −0, so adding a masked-off ±0 leaves it bitwise unchanged (no branch per block).
            unsafe {
                if e - s == 1 {
                    let zs = z[s];
                    for i in 0..B {
                        let x = V::load(self.x32(s, b + 32 * i));
                        acc[i] = V::masked_fma(acc[i], bits[i], x, zs);
                    }
                } else {
                    // The run's entries summed first (B independent chains), then added under
                    // its bits.
                    let mut tmp: [V; B] =
                        std::array::from_fn(|i| V::scale(V::load(self.x32(s, b + 32 * i)), z[s]));
                    for p in s + 1..e {
                        let zp = z[p];
                        for i in 0..B {
                            tmp[i] = V::fma_scalar(V::load(self.x32(p, b + 32 * i)), zp, tmp[i]);
                        }
                    }
                    for i in 0..B {
                        acc[i] = V::masked_add(acc[i], bits[i], tmp[i]);
                    }
                }
            }
        }
        for ((k, ps), &zc) in self.classes.iter().zip(self.class_z) {
            for i in 0..B {
                let bits = self.bits32(*k, b + 32 * i);
                if bits != 0 {
                    acc[i] = unsafe {
                        V::masked_fma(acc[i], bits, V::load(self.x32(ps[0], b + 32 * i)), zc)
                    };
                }
            }
        }
        for i in 0..B {
            let bb = b + 32 * i;
            if let Some(y) = self.y {
                let row = self.r0 + bb;
                acc[i] = unsafe { V::sub(acc[i], V::load(y[row..row + 32].as_ptr())) };
            }
            unsafe { acc[i].store(q[bb..bb + 32].as_mut_ptr()) };
        }
    }

    /// `Σ_rows bit_k · X[:, col(p)] · q` over the chunk for E entries at once (run `ks[e]`, entry
    /// `ps[e]`): 32 f32 lanes each, folded to 16, the rows after `full` added one at a time into
    /// lanes 0, 1, …, and the 16 lanes summed in f64. Each entry's arithmetic is the same for any E.
    /// With `SHARED` all E entries are at one column of X (`ps[0]`'s), loaded once.
    ///
    /// # Safety
    /// `V`'s instruction set must be available.
    #[inline(always)]
    unsafe fn adjoint_entries<V: Rows32, const E: usize, const SHARED: bool>(
        &self,
        ks: [usize; E],
        ps: [usize; E],
        full: usize,
        q: &[f32],
    ) -> [f64; E] {
        let mut acc = [unsafe { V::zero() }; E];
        // Column pointers and mask words per entry, looked up once; no branch on the bits (an
        // all-zero block adds ±0 to an accumulator that is never −0, leaving it unchanged).
        let xp: [*const f32; E] = std::array::from_fn(|e| unsafe { self.x32(ps[e], 0) });
        let runs = self.t.runs.len();
        let mw: [*const u64; E] = std::array::from_fn(|e| self.masks[ks[e] * 2..].as_ptr());
        let qp = q.as_ptr();
        for b in (0..full).step_by(32) {
            // SAFETY: b + 32 ≤ full ≤ the chunk's rows, within every column and q; word b / 64
            // of run ks[e] lies at ks[e]·2 + word(runs, 0, b / 64) within the chunk's block.
            unsafe {
                let qb = V::load(qp.add(b));
                let at = word(runs, 0, b / 64);
                let x0 = V::load(xp[0].add(b));
                for e in 0..E {
                    let bits = (*mw[e].add(at) >> (b % 64)) as u32;
                    let x = if SHARED { x0 } else { V::load(xp[e].add(b)) };
                    acc[e] = V::masked_fmav(acc[e], bits, x, qb);
                }
            }
        }
        std::array::from_fn(|e| {
            let mut lanes = [0.0f32; 16];
            unsafe { acc[e].fold16(&mut lanes) };
            let col = self.col(ps[e]);
            for b in full..q.len() {
                if self.bit(ks[e], b) {
                    let l = (b - full) % 16;
                    lanes[l] = col[b].mul_add(q[b], lanes[l]);
                }
            }
            lanes.iter().map(|&v| v as f64).sum()
        })
    }
}
