// topk: selects, from one tile of candidates, a superset of those that can enter the running
// top-s, by a radix histogram of the magnitudes' bit patterns and a compaction. The host merges
// the survivors into its running set (exact order: |v| descending, then index), so the selection
// is the same as the CPU's.
//
// For v ≠ 0 the key bitcast<u32>(abs(v)) is monotone in |v|; its top 12 bits (key >> 19) give
// 4096 bins.
//   entry `histogram`: hist[key >> 19] += 1 for every candidate with key ≥ floor, key > 0
//   entry `threshold`: (one invocation) the largest bin B with count(bins ≥ B) ≥ keep, or bin 0 when
//                      fewer than keep candidates pass; thr = max(B << 19, floor, 1)
//   entry `compact`:   every candidate with key ≥ thr is appended (index first + position, value)
// Candidate k belongs to neuron neurons[k / d], coordinate k % d: global index neuron · d + k % d.
// Bindings:
//   0 uniform  Params   len, keep, floor (key of the running set's worst entry; 0 while not full), d
//   1 storage  cand     candidates of the tile
//   2 storage  hist     4096 bin counters (atomic), then thr at [4096], survivor count at [4097]
//   3 storage  out_idx  survivors' global indices
//   4 storage  out_val  survivors' values
//   5 storage  neurons  the tile's neuron ids
// Dispatch: histogram and compact (ceil(len / 64), 1, 1); threshold (1, 1, 1).

struct Params {
    len: u32,
    keep: u32,
    floor: u32,
    d: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cand: array<f32>;
@group(0) @binding(2) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> out_idx: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_val: array<f32>;
@group(0) @binding(5) var<storage, read> neurons: array<u32>;

const THR: u32 = 4096u;
const COUNT: u32 = 4097u;

fn key_of(v: f32) -> u32 {
    return bitcast<u32>(abs(v));
}

@compute @workgroup_size(64)
fn histogram(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    if (k >= params.len) {
        return;
    }
    let key = key_of(cand[k]);
    if (key > 0u && key >= params.floor) {
        atomicAdd(&hist[key >> 19u], 1u);
    }
}

@compute @workgroup_size(1)
fn threshold() {
    var total = 0u;
    var bin = 0u;
    for (var b = 4095i; b >= 0i; b = b - 1i) {
        total = total + atomicLoad(&hist[u32(b)]);
        if (total >= params.keep) {
            bin = u32(b);
            break;
        }
    }
    atomicStore(&hist[THR], max(max(bin << 19u, params.floor), 1u));
    atomicStore(&hist[COUNT], 0u);
}

@compute @workgroup_size(64)
fn compact(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    if (k >= params.len) {
        return;
    }
    let v = cand[k];
    if (key_of(v) >= atomicLoad(&hist[THR])) {
        let slot = atomicAdd(&hist[COUNT], 1u);
        out_idx[slot] = neurons[k / params.d] * params.d + k % params.d;
        out_val[slot] = v;
    }
}
