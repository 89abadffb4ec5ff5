// topk: the running top-s of the gradient pass, merged on the device. After each tile, the pool
// (the running set, then the tile's candidates) is cut to its `keep` best entries: |v| larger
// first, ties to the smaller index, zeros never. The running set is kept sorted by index and a
// tile's indices all exceed the running set's (tiles run over ascending neurons), so the pool is
// index-sorted, "the smaller index" is "earlier in the pool", and the cut is a stable compaction:
// the result is exactly the CPU's `TopS`, and again sorted by index.
//
// The key of v is bitcast<u32>(abs(v)) (monotone in |v|; 0 for ±0). An exact radix select finds
// the keep-th largest key T in four 8-bit passes from the top, and how many entries equal to T
// are taken (`need`); then every entry with key > T is kept, and the first `need` with key = T.
//   entry `histogram`: hist[(key >> shift) & 255] += 1 over pool entries with key > 0 whose
//                      higher bits equal the prefix found so far (pass = 0..3, shift = 24 − 8·pass)
//   entry `pick`:      (one workgroup, an invocation per bin) counts the entries above each bin
//                      by a parallel prefix sum from the top, and the bin holding the need-th
//                      entry adds itself to the prefix; the bins are cleared. On pass 0 it starts
//                      need = keep, and when the pool holds ≤ keep nonzeros marks `all`.
//   entry `count`:     per block of 1024 pool entries: (kept by key > T, equal to T)
//   entry `scan`:      (one workgroup) per block: the ties before it, the entries it keeps
//                      (its > T ones and its share of the `need` ties), and its output offset;
//                      the new running count
//   entry `place`:     writes the kept entries of each block at their offsets, in pool order
// Pool entry i: i < count_in: (run_idx[i], run_val[i]); else k = i − count_in < len:
// (neurons[neuron0 + k / d] · d + k % d, cand[k]). count_in and count_out are ctl[COUNT + parity] and
// ctl[COUNT + 1 − parity]: the running set ping-pongs between two buffer pairs, tile by tile.
// Bindings:
//   0 uniform  Params   len (candidates in the tile), keep, d, round (the pass), parity, blocks, neuron0
//   1 storage  cand     the tile's candidates
//   2 storage  neurons  live neuron ids; the tile's are neurons[neuron0 ..]
//   3 storage  run_idx  the running set's indices (in)
//   4 storage  run_val  its values (in)
//   5 storage  out_idx  the new running set's indices
//   6 storage  out_val  its values
//   7 storage  ctl      256 bins, prefix, need, all, count[2]   (u32, zeroed before a pass)
//   8 storage  blocks   per block: kept > T, ties, output offset, ties before
// Dispatch: histogram, count, place (blocks, 1, 1) with blocks = ceil((keep + len) / 1024);
//           pick (1, 1, 1); scan (1, 1, 1). Workgroups of 256, 4 pool entries per invocation.
// The CPU twin is `cpu::topk::twin_merge`.

struct Params {
    len: u32,
    keep: u32,
    d: u32,
    round: u32,
    parity: u32,
    blocks: u32,
    neuron0: u32,
    _p1: u32,
}

const PREFIX: u32 = 256u;
const NEED: u32 = 257u;
const ALL: u32 = 258u;
const COUNT: u32 = 259u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cand: array<f32>;
@group(0) @binding(2) var<storage, read> neurons: array<u32>;
@group(0) @binding(3) var<storage, read> run_idx: array<u32>;
@group(0) @binding(4) var<storage, read> run_val: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_idx: array<u32>;
@group(0) @binding(6) var<storage, read_write> out_val: array<f32>;
@group(0) @binding(7) var<storage, read_write> ctl: array<atomic<u32>>;
@group(0) @binding(8) var<storage, read_write> blocks: array<vec4<u32>>;

var<workgroup> bins: array<atomic<u32>, 256>;
var<workgroup> scan_a: array<u32, 256>;
var<workgroup> scan_b: array<u32, 256>;

struct Entry {
    idx: u32,
    val: f32,
}

fn count_in() -> u32 {
    return atomicLoad(&ctl[COUNT + params.parity]);
}

fn pool_at(i: u32, n_in: u32) -> Entry {
    if (i < n_in) {
        return Entry(run_idx[i], run_val[i]);
    }
    let k = i - n_in;
    if (k < params.len) {
        return Entry(neurons[params.neuron0 + k / params.d] * params.d + k % params.d, cand[k]);
    }
    return Entry(0u, 0.0);
}

fn key_of(v: f32) -> u32 {
    return bitcast<u32>(abs(v));
}

@compute @workgroup_size(256)
fn histogram(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    atomicStore(&bins[lid], 0u);
    workgroupBarrier();
    let n_in = count_in();
    let all = atomicLoad(&ctl[ALL]);
    let shift = 24u - 8u * params.round;
    let prefix = atomicLoad(&ctl[PREFIX]);
    if (all == 0u) {
        for (var q = 0u; q < 4u; q = q + 1u) {
            let key = key_of(pool_at(wg.x * 1024u + lid * 4u + q, n_in).val);
            var hit = key > 0u;
            if (params.round > 0u) {
                hit = hit && (key >> (shift + 8u)) == (prefix >> (shift + 8u));
            }
            if (hit) {
                atomicAdd(&bins[(key >> shift) & 255u], 1u);
            }
        }
    }
    workgroupBarrier();
    let c = atomicLoad(&bins[lid]);
    if (c > 0u) {
        atomicAdd(&ctl[lid], c);
    }
}

@compute @workgroup_size(256)
fn pick(@builtin(local_invocation_index) lid: u32) {
    // Every invocation takes part in the prefix sum (its barriers need uniform control flow);
    // a pool already marked `all` then returns without writing.
    let done = atomicLoad(&ctl[ALL]) == 1u;
    // Read before the prefix sum's barriers: one invocation rewrites NEED afterwards.
    var need = atomicLoad(&ctl[NEED]);
    let shift = 24u - 8u * params.round;
    // Invocation lid holds bin b = 255 − lid, so an exclusive prefix sum over the invocations is,
    // for each bin, the count of the bins above it.
    let b = 255u - lid;
    let c = atomicLoad(&ctl[b]);
    scan_a[lid] = c;
    scan_b[lid] = 0u;
    let total = scan2(lid).x;
    let above = scan_a[lid];
    if (done) {
        return;
    }
    if (params.round == 0u) {
        need = params.keep;
    }
    if (params.round == 0u && total <= params.keep) {
        atomicStore(&ctl[b], 0u);
        if (lid == 0u) {
            atomicStore(&ctl[ALL], 1u);
        }
        return;
    }
    // The bin holding the need-th largest entry: the one with above < need ≤ above + c.
    if (above < need && above + c >= need) {
        atomicStore(&ctl[PREFIX], atomicLoad(&ctl[PREFIX]) | (b << shift));
        atomicStore(&ctl[NEED], need - above);
    }
    atomicStore(&ctl[b], 0u);
}

// Whether pool entry e is kept outright (1), a tie with T (2), or dropped (0).
fn class_of(e: Entry, all: u32, thr: u32) -> u32 {
    let key = key_of(e.val);
    if (key == 0u) {
        return 0u;
    }
    if (all == 1u || key > thr) {
        return 1u;
    }
    if (key == thr) {
        return 2u;
    }
    return 0u;
}

// Exclusive prefix sums of scan_a and scan_b over the workgroup (Hillis–Steele); returns the
// totals. Called by all 256 invocations.
fn scan2(lid: u32) -> vec2<u32> {
    let own_a = scan_a[lid];
    let own_b = scan_b[lid];
    workgroupBarrier();
    for (var off = 1u; off < 256u; off = off * 2u) {
        var ta = 0u;
        var tb = 0u;
        if (lid >= off) {
            ta = scan_a[lid - off];
            tb = scan_b[lid - off];
        }
        workgroupBarrier();
        scan_a[lid] = scan_a[lid] + ta;
        scan_b[lid] = scan_b[lid] + tb;
        workgroupBarrier();
    }
    let totals = vec2<u32>(scan_a[255], scan_b[255]);
    workgroupBarrier();
    scan_a[lid] = scan_a[lid] - own_a;
    scan_b[lid] = scan_b[lid] - own_b;
    workgroupBarrier();
    return totals;
}

@compute @workgroup_size(256)
fn count(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n_in = count_in();
    let all = atomicLoad(&ctl[ALL]);
    let thr = atomicLoad(&ctl[PREFIX]);
    var kept = 0u;
    var ties = 0u;
    for (var q = 0u; q < 4u; q = q + 1u) {
        let cls = class_of(pool_at(wg.x * 1024u + lid * 4u + q, n_in), all, thr);
        kept = kept + select(0u, 1u, cls == 1u);
        ties = ties + select(0u, 1u, cls == 2u);
    }
    scan_a[lid] = kept;
    scan_b[lid] = ties;
    let totals = scan2(lid);
    if (lid == 0u) {
        blocks[wg.x] = vec4<u32>(totals.x, totals.y, 0u, 0u);
    }
}

@compute @workgroup_size(256)
fn scan(@builtin(local_invocation_index) lid: u32) {
    let need = atomicLoad(&ctl[NEED]);
    var ties_before = 0u;
    var out_before = 0u;
    for (var base = 0u; base < params.blocks; base = base + 256u) {
        let b = base + lid;
        var blk = vec4<u32>(0u, 0u, 0u, 0u);
        if (b < params.blocks) {
            blk = blocks[b];
        }
        scan_a[lid] = blk.y;
        scan_b[lid] = 0u;
        let tie_total = scan2(lid);
        let tie_off = ties_before + scan_a[lid];
        var take = 0u;
        if (tie_off < need) {
            take = min(need - tie_off, blk.y);
        }
        scan_a[lid] = blk.x + take;
        let out_total = scan2(lid);
        if (b < params.blocks) {
            blocks[b] = vec4<u32>(blk.x, blk.y, out_before + scan_a[lid], tie_off);
        }
        ties_before = ties_before + tie_total.x;
        out_before = out_before + out_total.x;
    }
    if (lid == 0u) {
        atomicStore(&ctl[COUNT + 1u - params.parity], out_before);
    }
}

@compute @workgroup_size(256)
fn place(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n_in = count_in();
    let all = atomicLoad(&ctl[ALL]);
    let thr = atomicLoad(&ctl[PREFIX]);
    let need = atomicLoad(&ctl[NEED]);
    let blk = blocks[wg.x];
    var es: array<Entry, 4>;
    var cls: array<u32, 4>;
    var ties = 0u;
    for (var q = 0u; q < 4u; q = q + 1u) {
        es[q] = pool_at(wg.x * 1024u + lid * 4u + q, n_in);
        cls[q] = class_of(es[q], all, thr);
        ties = ties + select(0u, 1u, cls[q] == 2u);
    }
    scan_a[lid] = ties;
    scan_b[lid] = 0u;
    _ = scan2(lid);
    var tie_rank = blk.w + scan_a[lid];
    var takes: array<bool, 4>;
    var kept = 0u;
    for (var q = 0u; q < 4u; q = q + 1u) {
        var take = cls[q] == 1u;
        if (cls[q] == 2u) {
            take = tie_rank < need;
            tie_rank = tie_rank + 1u;
        }
        takes[q] = take;
        kept = kept + select(0u, 1u, take);
    }
    scan_a[lid] = kept;
    _ = scan2(lid);
    var at = blk.z + scan_a[lid];
    for (var q = 0u; q < 4u; q = q + 1u) {
        if (takes[q]) {
            out_idx[at] = es[q].idx;
            out_val[at] = es[q].val;
            at = at + 1u;
        }
    }
}
