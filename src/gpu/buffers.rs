//! Device buffers: a pool with allocation accounting (current and peak bytes), uploads, and the
//! [`Recorder`] through which every command reaches the queue: dispatches (parameters in one
//! arena of uniform slots bound with dynamic offsets, bind groups cached by buffer identity),
//! copies, submissions and readbacks. All buffer mapping and device polling lives in this file,
//! and so does the counting of submissions, readbacks, dispatches and created objects.
//!
//! Buffers are recycled by exact size: a solve asks for the same sizes every step (n-vectors,
//! support-sized vectors, tiles), so after the first step it allocates nothing. Pooled buffers
//! stay counted as device memory until the pool drops them; the pool keeps at most
//! [`POOL_BYTES`] idle.

use super::context::GpuContext;
use super::pipeline::{Kernel, PARAM_SLOT};
use crate::backend::Counters;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Most idle bytes the pool keeps for reuse.
pub const POOL_BYTES: u64 = 32 << 20;

/// The size actually allocated for a request: 256 bytes at least, then eight classes per power
/// of two (at most 12.5% over the request), so sizes that drift from step to step (support
/// lengths, readbacks) share a few pooled buffers. Never above `max` when the request is not.
pub fn size_class(bytes: u64, max: u64) -> u64 {
    if bytes <= 256 {
        return 256;
    }
    let step = bytes.next_power_of_two() / 8;
    let class = bytes.div_ceil(step) * step;
    if class > max && bytes <= max {
        bytes.div_ceil(16) * 16
    } else {
        class
    }
}

/// Bytes of device buffers alive now (in use or pooled) and at most, and the idle buffers.
#[derive(Debug, Default)]
pub struct MemoryCounter {
    current: AtomicU64,
    peak: AtomicU64,
    idle: Mutex<Pool>,
}

#[derive(Debug, Default)]
struct Pool {
    bytes: u64,
    free: HashMap<(u64, u32), Vec<wgpu::Buffer>>,
}

impl MemoryCounter {
    fn take(&self, size: u64, usage: wgpu::BufferUsages) -> Option<wgpu::Buffer> {
        let mut pool = self.idle.lock().ok()?;
        let buf = pool.free.get_mut(&(size, usage.bits()))?.pop()?;
        pool.bytes -= size;
        Some(buf)
    }
    /// Returns a buffer for reuse, or destroys it when the pool is full.
    fn give(&self, buf: wgpu::Buffer) {
        let size = buf.size();
        if let Ok(mut pool) = self.idle.lock() {
            if pool.bytes + size <= POOL_BYTES {
                pool.bytes += size;
                pool.free
                    .entry((size, buf.usage().bits()))
                    .or_default()
                    .push(buf);
                return;
            }
        }
        buf.destroy();
        self.sub(size);
    }
    fn add(&self, bytes: u64) {
        let now = self.current.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
    fn sub(&self, bytes: u64) {
        self.current.fetch_sub(bytes, Ordering::Relaxed);
    }
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
    pub fn reset_peak(&self) {
        self.peak
            .store(self.current.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// A device buffer counted against the context's memory; returned to the pool on drop.
#[derive(Debug)]
pub struct DeviceBuffer {
    pub buf: wgpu::Buffer,
    bytes: u64,
    counter: Arc<MemoryCounter>,
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // A cheap handle clone; the pool keeps the buffer alive for the next request of its size.
        self.counter.give(self.buf.clone());
    }
}

impl DeviceBuffer {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

impl GpuContext {
    /// Every device buffer of the engine is created here (and counted).
    fn create_buffer(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.stats.buffers_created.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    }

    fn counted(&self, buf: wgpu::Buffer) -> DeviceBuffer {
        let bytes = buf.size();
        self.memory.add(bytes);
        DeviceBuffer {
            buf,
            bytes,
            counter: self.memory.clone(),
        }
    }

    /// A storage buffer of at least `bytes` (rounded up to 16; bindings may not be empty), from
    /// the pool when one of that size is idle. Its contents are unspecified: every kernel writes
    /// its outputs in full.
    pub fn storage(&self, label: &str, bytes: u64) -> DeviceBuffer {
        let max = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        let size = size_class(bytes, max);
        if let Some(buf) = self.memory.take(size, STORAGE) {
            return DeviceBuffer {
                buf,
                bytes: size,
                counter: self.memory.clone(),
            };
        }
        let buf = self.create_buffer(label, size, STORAGE);
        self.counted(buf)
    }

    /// Like [`storage`](Self::storage), but an error naming `what` when the buffer would exceed
    /// the adapter's largest storage binding (instead of a validation failure on the device).
    pub fn try_storage(&self, what: &'static str, bytes: u64) -> Result<DeviceBuffer> {
        let max = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if bytes > max {
            return Err(Error::invalid(
                what,
                format!("{bytes} bytes"),
                format!("exceeds the adapter's largest storage buffer ({max} bytes)"),
            ));
        }
        Ok(self.storage(what, bytes))
    }

    /// A storage buffer holding `data` (padded to 16 bytes).
    pub fn storage_init<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> DeviceBuffer {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let out = self.storage(label, bytes.len() as u64);
        self.write(&out, 0, data);
        out
    }

    /// Writes `data` at element offset `at` (queued; ordered before the next submit).
    pub fn write<T: bytemuck::Pod>(&self, dst: &DeviceBuffer, at: u64, data: &[T]) {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.is_empty() {
            return;
        }
        let offset = at * std::mem::size_of::<T>() as u64;
        if bytes.len().is_multiple_of(4) {
            self.queue.write_buffer(&dst.buf, offset, bytes);
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().div_ceil(4) * 4, 0);
            self.queue.write_buffer(&dst.buf, offset, &padded);
        }
    }
}

/// The grid of an element-wise entry over `len` elements, 64 per workgroup: ceil(len / 64)
/// workgroups laid out in 2-D so that no dimension exceeds 65 535 (the shader's element is
/// `(wg.y · 65535 + wg.x) · 64 + lid`).
pub fn rows_grid(len: usize) -> (u32, u32, u32) {
    let w = len.div_ceil(64).max(1);
    (w.min(65_535) as u32, w.div_ceil(65_535) as u32, 1)
}

/// Slots per arena chunk: 256 dispatches' parameters in one 64 KiB uniform buffer.
const SLOTS_PER_CHUNK: u64 = 256;
/// Most cached bind groups before the cache starts over (a run needs a few dozen).
const BIND_CACHE_MAX: usize = 4096;

/// What the context has done, counted as it happens (see [`Counters`]).
#[derive(Debug, Default)]
pub struct Stats {
    submits: AtomicU64,
    readbacks: AtomicU64,
    readback_bytes: AtomicU64,
    readback_wait_us: AtomicU64,
    dispatches: AtomicU64,
    buffers_created: AtomicU64,
    bind_groups_created: AtomicU64,
}

impl Stats {
    pub fn snapshot(&self) -> Counters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            submits: get(&self.submits),
            readbacks: get(&self.readbacks),
            readback_bytes: get(&self.readback_bytes),
            readback_wait_us: get(&self.readback_wait_us),
            dispatches: get(&self.dispatches),
            buffers_created: get(&self.buffers_created),
            bind_groups_created: get(&self.bind_groups_created),
        }
    }
}

/// A bind group is reused while its entry point, parameter chunk and buffers are the same.
type BindKey = (usize, usize, Vec<wgpu::Buffer>);

/// The parameter arena (uniform chunks, created on first need and kept) and the bind groups.
#[derive(Debug, Default)]
pub struct Binder {
    chunks: Mutex<Vec<wgpu::Buffer>>,
    groups: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
    /// Held from a recorder's arena writes to its submit: threads sharing a context (tests do)
    /// must not interleave their parameters.
    submit: Mutex<()>,
}

impl GpuContext {
    /// The arena chunk `c`, created when first needed.
    fn chunk(&self, c: usize) -> wgpu::Buffer {
        let mut chunks = self.binder.chunks.lock().unwrap_or_else(|p| p.into_inner());
        while chunks.len() <= c {
            let buf = self.create_buffer(
                "relu-iht.params",
                SLOTS_PER_CHUNK * PARAM_SLOT,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            );
            chunks.push(buf);
        }
        chunks[c].clone()
    }

    fn bind_group(&self, kernel: &Kernel, c: usize, storage: &[&DeviceBuffer]) -> wgpu::BindGroup {
        let key: BindKey = (
            kernel.id,
            c,
            storage.iter().map(|b| b.buf.clone()).collect(),
        );
        let mut groups = self.binder.groups.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = groups.get(&key) {
            return g.clone();
        }
        if groups.len() >= BIND_CACHE_MAX {
            groups.clear();
        }
        let chunk = self.chunk(c);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &chunk,
                offset: 0,
                size: std::num::NonZeroU64::new(PARAM_SLOT),
            }),
        }];
        entries.extend(kernel.storage.iter().zip(storage).map(|(&(b, _), buf)| {
            wgpu::BindGroupEntry {
                binding: b,
                resource: buf.buf.as_entire_binding(),
            }
        }));
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&kernel.label),
            layout: &kernel.layout,
            entries: &entries,
        });
        self.stats
            .bind_groups_created
            .fetch_add(1, Ordering::Relaxed);
        groups.insert(key, group.clone());
        group
    }

    /// Forgets every cached bind group (when the buffers they name are released for good).
    pub fn drop_bind_groups(&self) {
        self.binder
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// What the context has done so far.
    pub fn counters(&self) -> Counters {
        self.stats.snapshot()
    }

    /// Submits `enc` with nothing else recorded (a convenience for one-off work).
    pub fn recorder(&self) -> Recorder<'_> {
        Recorder::new(self)
    }
}

/// The commands of one submission: dispatches, copies and clears in order, their parameters
/// gathered in the arena and written with one queued write per chunk just before the submit
/// (queued writes land before the submission that follows them, after every earlier one).
///
/// A recorder holds validation and out-of-memory error scopes from its start to its submission:
/// what the device rejects in between (a dispatch, a buffer, a binding) comes back from
/// [`submit`](Self::submit) or [`read`](Self::read) as an error value, as does anything the
/// device reported outside a scope or a lost device; nothing panics.
pub struct Recorder<'c> {
    ctx: &'c GpuContext,
    enc: wgpu::CommandEncoder,
    params: Vec<u8>,
    /// (validation, out of memory): the inner scope first, so that dropping the pair (on an error
    /// path before the submit) pops them in reverse order of their pushes.
    scopes: Option<(wgpu::ErrorScopeGuard, wgpu::ErrorScopeGuard)>,
    /// The first error of a submission flushed mid-way ([`flush`](Self::flush)).
    failed: Option<Error>,
    /// While the context profiles: timestamp query sets, and the entry point of each dispatch
    /// (queries 2i and 2i + 1 bracket dispatch i).
    query_sets: Vec<wgpu::QuerySet>,
    stamped: Vec<String>,
}

/// Timestamp queries per query set.
const QUERIES_PER_SET: u32 = 256;

/// Pushes the out-of-memory scope, then the validation scope; returns (validation, oom).
fn push_scopes(device: &wgpu::Device) -> (wgpu::ErrorScopeGuard, wgpu::ErrorScopeGuard) {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    (validation, oom)
}

fn gpu_error(what: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Gpu {
        what,
        message: e.to_string().lines().next().unwrap_or("").to_string(),
    }
}

impl<'c> Recorder<'c> {
    pub fn new(ctx: &'c GpuContext) -> Self {
        let scopes = Some(push_scopes(&ctx.device));
        let enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("relu-iht"),
            });
        Self {
            ctx,
            enc,
            params: Vec::new(),
            scopes,
            failed: None,
            query_sets: Vec::new(),
            stamped: Vec::new(),
        }
    }

    /// The context.
    pub fn ctx(&self) -> &'c GpuContext {
        self.ctx
    }

    /// Records one dispatch of the entry point `name` (`"<kernel>.<entry>"`) with `params` in the
    /// next arena slot and `storage` bound to the entry's storage bindings in ascending order.
    /// Whether the recording is for a hardware GPU (not a CPU adapter such as Lavapipe).
    pub fn hardware(&self) -> bool {
        self.ctx.adapter.is_hardware()
    }

    /// Whether the CPU adapters' entries may share loads across a subgroup
    /// ([`GpuContext::lane_subgroups`]).
    pub fn lane_subgroups(&self) -> bool {
        self.ctx.lane_subgroups
    }

    /// Whether the kernels that read X read it in f16 (`--gpu-f16` granted).
    pub fn x_f16(&self) -> bool {
        self.ctx.x_f16
    }

    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        name: &str,
        params: &P,
        storage: &[&DeviceBuffer],
        groups: (u32, u32, u32),
    ) {
        let kernel = self.ctx.kernels.get(name);
        assert_eq!(
            kernel.storage.len(),
            storage.len(),
            "{}: bindings {:?}",
            kernel.label,
            kernel.storage
        );
        let bytes = bytemuck::bytes_of(params);
        debug_assert!(bytes.len() as u64 <= PARAM_SLOT);
        let slot = self.params.len() as u64 / PARAM_SLOT;
        self.params.extend_from_slice(bytes);
        self.params.resize(((slot + 1) * PARAM_SLOT) as usize, 0);
        let c = (slot / SLOTS_PER_CHUNK) as usize;
        let offset = ((slot % SLOTS_PER_CHUNK) * PARAM_SLOT) as u32;
        let group = self.ctx.bind_group(kernel, c, storage);
        let stamp = self.ctx.profiling().then(|| {
            let q = 2 * self.stamped.len() as u32;
            if q.is_multiple_of(QUERIES_PER_SET) {
                self.query_sets
                    .push(self.ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                        label: Some("relu-iht.timestamps"),
                        ty: wgpu::QueryType::Timestamp,
                        count: QUERIES_PER_SET,
                    }));
            }
            self.stamped.push(name.to_string());
            q % QUERIES_PER_SET
        });
        let mut pass = self.enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&kernel.label),
            timestamp_writes: stamp.map(|q| wgpu::ComputePassTimestampWrites {
                query_set: self.query_sets.last().expect("a query set"),
                beginning_of_pass_write_index: Some(q),
                end_of_pass_write_index: Some(q + 1),
            }),
        });
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &group, &[offset]);
        pass.dispatch_workgroups(groups.0.max(1), groups.1.max(1), groups.2.max(1));
        self.ctx.stats.dispatches.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies `bytes` bytes between buffers (offsets and size multiples of 4).
    pub fn copy(&mut self, src: &DeviceBuffer, at: u64, dst: &DeviceBuffer, to: u64, bytes: u64) {
        if bytes > 0 {
            self.enc
                .copy_buffer_to_buffer(&src.buf, at, &dst.buf, to, bytes);
        }
    }

    /// Zeroes `bytes` bytes of `buf` from byte `at` (multiples of 4).
    pub fn clear(&mut self, buf: &DeviceBuffer, at: u64, bytes: u64) {
        if bytes > 0 {
            self.enc.clear_buffer(&buf.buf, at, Some(bytes));
        }
    }

    /// Records the resolution of this submission's timestamps into a readable buffer.
    fn resolve_stamps(&mut self) -> Option<(wgpu::Buffer, Vec<String>)> {
        if self.stamped.is_empty() {
            return None;
        }
        let queries = 2 * self.stamped.len() as u64;
        let bytes = queries * 8;
        let device = &self.ctx.device;
        let resolve = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("relu-iht.timestamps.resolve"),
            size: self.query_sets.len() as u64 * QUERIES_PER_SET as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("relu-iht.timestamps.read"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        for (k, set) in self.query_sets.iter().enumerate() {
            let first = k as u64 * QUERIES_PER_SET as u64;
            let used = (queries - first).min(QUERIES_PER_SET as u64) as u32;
            self.enc
                .resolve_query_set(set, 0..used, &resolve, first * 8);
        }
        self.enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, bytes);
        self.query_sets.clear();
        Some((read, std::mem::take(&mut self.stamped)))
    }

    /// Reads resolved timestamps and adds each dispatch's time to the context's profile.
    fn add_stamps(&self, read: wgpu::Buffer, names: Vec<String>) -> Result<()> {
        let slice = read.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_error("poll", e))?;
        rx.recv()
            .map_err(|e| gpu_error("timestamps", e))?
            .map_err(|e| gpu_error("timestamps", e))?;
        let bytes = slice
            .get_mapped_range()
            .map(|view| view.to_vec())
            .map_err(|e| gpu_error("timestamps", e))?;
        read.unmap();
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
        let period_ms = self.ctx.queue.get_timestamp_period() as f64 * 1e-6;
        let mut profile = self.ctx.profile.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(times) = profile.as_mut() {
            for (i, name) in names.into_iter().enumerate() {
                let ms = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period_ms;
                let entry = times.entry(name).or_insert((0.0, 0));
                entry.0 += ms;
                entry.1 += 1;
            }
        }
        Ok(())
    }

    /// Writes the parameters, submits, and closes the error scopes (innermost first).
    fn finish_in_place(&mut self) -> Result<()> {
        let stamps = self.resolve_stamps();
        {
            let _one_at_a_time = self
                .ctx
                .binder
                .submit
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let chunk_bytes = (SLOTS_PER_CHUNK * PARAM_SLOT) as usize;
            for (c, bytes) in self.params.chunks(chunk_bytes).enumerate() {
                self.ctx.queue.write_buffer(&self.ctx.chunk(c), 0, bytes);
            }
            let enc = std::mem::replace(
                &mut self.enc,
                self.ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("relu-iht"),
                    }),
            );
            self.ctx.queue.submit(Some(enc.finish()));
            self.params.clear();
        }
        self.ctx.stats.submits.fetch_add(1, Ordering::Relaxed);
        let mut first = self.failed.take();
        if let Some((validation, oom)) = self.scopes.take() {
            for scope in [validation, oom] {
                if let Some(e) = pollster::block_on(scope.pop()) {
                    first.get_or_insert(gpu_error("device", e));
                }
            }
        }
        if let Some(e) = self.ctx.device_error() {
            first.get_or_insert(gpu_error("device", e));
        }
        if let (None, Some((read, names))) = (&first, stamps) {
            self.add_stamps(read, names)?;
        }
        first.map_or(Ok(()), Err)
    }

    /// Submits what was recorded so far and goes on recording into a fresh submission (when a
    /// buffer the recorded commands read is about to be rewritten from the host). An error is kept
    /// for the final [`submit`](Self::submit) or [`read`](Self::read).
    pub fn flush(&mut self) {
        let result = self.finish_in_place();
        self.scopes = Some(push_scopes(&self.ctx.device));
        if let Err(e) = result {
            self.failed.get_or_insert(e);
        }
    }

    /// Submits what was recorded.
    pub fn submit(mut self) -> Result<()> {
        self.finish_in_place()
    }

    /// Appends copies of `regions` (buffer, byte offset, bytes; multiples of 4) into one staging
    /// buffer, submits, waits and returns their bytes, concatenated: one readback however many
    /// regions.
    pub fn read(mut self, regions: &[(&DeviceBuffer, u64, u64)]) -> Result<Vec<u8>> {
        let total: u64 = regions.iter().map(|r| r.2).sum();
        if total == 0 {
            self.finish_in_place()?;
            return Ok(Vec::new());
        }
        let ctx = self.ctx;
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        // Readbacks vary in length (support sizes); size classes keep the pool small.
        let staging_size = size_class(total, u64::MAX);
        let staging = match ctx.memory.take(staging_size, usage) {
            Some(buf) => DeviceBuffer {
                buf,
                bytes: staging_size,
                counter: ctx.memory.clone(),
            },
            None => ctx.counted(ctx.create_buffer("relu-iht.readback", staging_size, usage)),
        };
        let mut to = 0;
        for &(src, at, bytes) in regions {
            self.enc
                .copy_buffer_to_buffer(&src.buf, at, &staging.buf, to, bytes);
            to += bytes;
        }
        let waiting = std::time::Instant::now();
        self.finish_in_place()?;
        ctx.stats.readbacks.fetch_add(1, Ordering::Relaxed);
        ctx.stats.readback_bytes.fetch_add(total, Ordering::Relaxed);
        let slice = staging.buf.slice(..total);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_error("poll", e))?;
        if let Some(e) = ctx.device_error() {
            return Err(gpu_error("device", e));
        }
        rx.recv()
            .map_err(|e| Error::Gpu {
                what: "readback",
                message: e.to_string(),
            })?
            .map_err(|e| Error::Gpu {
                what: "map",
                message: e.to_string(),
            })?;
        let out = slice.get_mapped_range().map(|view| view.to_vec());
        ctx.stats
            .readback_wait_us
            .fetch_add(waiting.elapsed().as_micros() as u64, Ordering::Relaxed);
        // Unmapped on every path: the staging buffer goes back to the pool.
        staging.buf.unmap();
        out.map_err(|e| Error::Gpu {
            what: "mapped range",
            message: e.to_string(),
        })
    }

    /// Reads `len` elements of `T` from element `at` of `src` (one readback).
    pub fn read_one<T: bytemuck::Pod>(
        self,
        src: &DeviceBuffer,
        at: usize,
        len: usize,
    ) -> Result<Vec<T>> {
        let size = std::mem::size_of::<T>();
        let bytes = self.read(&[(src, (at * size) as u64, (len * size) as u64)])?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}
