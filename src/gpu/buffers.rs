//! Device buffers: a pool with allocation accounting (current and peak bytes), uploads,
//! bind-group dispatch, and readback. All buffer mapping and device polling lives in this file.
//!
//! Buffers are recycled by exact size: a solve asks for the same sizes every step (n-vectors,
//! support-sized vectors, tiles), so after the first step it allocates nothing. Pooled buffers
//! stay counted as device memory until the pool drops them; the pool keeps at most
//! [`POOL_BYTES`] idle.

use super::context::GpuContext;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

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
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: STORAGE,
            mapped_at_creation: false,
        });
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
        if bytes.len() % 4 == 0 {
            self.queue.write_buffer(&dst.buf, offset, bytes);
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().div_ceil(4) * 4, 0);
            self.queue.write_buffer(&dst.buf, offset, &padded);
        }
    }

    /// Records one compute dispatch: a uniform built from `params`, a bind group of
    /// `(binding, buffer)` pairs against the pipeline's own layout, and the workgroup counts.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        enc: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        params: &P,
        storage: &[(u32, &DeviceBuffer)],
        groups: (u32, u32, u32),
    ) {
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("relu-iht.params"),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(storage.iter().map(|(b, buf)| wgpu::BindGroupEntry {
            binding: *b,
            resource: buf.buf.as_entire_binding(),
        }));
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("relu-iht.bind"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("relu-iht.pass"),
            timestamp_writes: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(groups.0.max(1), groups.1.max(1), groups.2.max(1));
    }

    /// A new command encoder.
    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("relu-iht"),
            })
    }

    /// Submits recorded work.
    pub fn submit(&self, enc: wgpu::CommandEncoder) {
        self.queue.submit(Some(enc.finish()));
    }

    /// Submits `enc` (if any), then copies `len` elements from element offset `at` of `src` to
    /// the host, waiting for the device.
    pub fn read<T: bytemuck::Pod>(
        &self,
        enc: Option<wgpu::CommandEncoder>,
        src: &DeviceBuffer,
        at: u64,
        len: usize,
    ) -> Result<Vec<T>> {
        let size = std::mem::size_of::<T>() as u64;
        let bytes = (len as u64 * size).div_ceil(4) * 4;
        if len == 0 {
            if let Some(enc) = enc {
                self.submit(enc);
            }
            return Ok(Vec::new());
        }
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        // Readbacks vary in length (selection survivors); size classes keep the pool small.
        let staging_size = size_class(bytes, u64::MAX);
        let staging = match self.memory.take(staging_size, usage) {
            Some(buf) => DeviceBuffer {
                buf,
                bytes: staging_size,
                counter: self.memory.clone(),
            },
            None => self.counted(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("relu-iht.readback"),
                size: staging_size,
                usage,
                mapped_at_creation: false,
            })),
        };
        let mut enc = enc.unwrap_or_else(|| self.encoder());
        enc.copy_buffer_to_buffer(&src.buf, at * size, &staging.buf, 0, bytes);
        self.submit(enc);
        let slice = staging.buf.slice(..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu {
                what: "poll",
                message: e.to_string(),
            })?;
        rx.recv()
            .map_err(|e| Error::Gpu {
                what: "readback",
                message: e.to_string(),
            })?
            .map_err(|e| Error::Gpu {
                what: "map",
                message: e.to_string(),
            })?;
        let out = slice
            .get_mapped_range()
            .map(|view| bytemuck::cast_slice::<u8, T>(&view[..len * size as usize]).to_vec());
        // Unmapped on every path: the staging buffer goes back to the pool.
        staging.buf.unmap();
        out.map_err(|e| Error::Gpu {
            what: "mapped range",
            message: e.to_string(),
        })
    }
}
