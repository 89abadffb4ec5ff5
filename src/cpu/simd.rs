//! The instruction sets the CPU kernels are built for, chosen once at run time, and a 32-row
//! register block ([`Rows32`]) that the support kernels are written against once.
//!
//! Three implementations: AVX-512F (two 16-lane registers, mask bits used directly as `k`
//! registers), AVX2+FMA (four 8-lane registers, mask bits expanded by compare) and a portable one.
//! Every lane does the same operations in the same order on each (an f32 `fma` per term), so the
//! three give bitwise identical results and the choice is a matter of speed only. A masked-off
//! lane is left as it is by AVX-512's masked `fma` and gets `0 · b` (±0) added on the others,
//! which leaves it unchanged as long as it does not hold −0 (an accumulator reaches −0 only
//! through a sum that underflows to a negative zero) and `b` is finite.
//!
//! `RELU_IHT_SIMD=avx2` or `RELU_IHT_SIMD=portable` forces a narrower path (for tests and
//! comparisons); a wider one than the processor has is never used. Only the project's own kernels
//! follow it: the `gemm` crate picks its kernels itself (AVX-512 ones included, where present).

use std::sync::OnceLock;

/// An instruction-set level of the CPU kernels, widest last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Portable,
    Avx2,
    Avx512,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2+fma",
            Isa::Avx512 => "avx512f",
        }
    }

    /// The widest level this processor runs.
    pub fn detected() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// The level the kernels use: the detected one, or a narrower one named by `RELU_IHT_SIMD`.
    pub fn current() -> Isa {
        static CHOSEN: OnceLock<Isa> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let widest = Isa::detected();
            let asked = match std::env::var("RELU_IHT_SIMD").ok().as_deref() {
                Some("portable") => Isa::Portable,
                Some("avx2") => Isa::Avx2,
                _ => widest,
            };
            asked.min(widest)
        })
    }
}

/// 32 consecutive rows of f32 in registers, and the operations the support kernels need. Mask
/// bits arrive as a `u32` (bit l for row l of the block).
///
/// # Safety
/// The methods use the implementation's instruction set: call them only where
/// [`Isa::current`] allows it, and `load` only with 32 readable floats.
#[allow(
    clippy::missing_safety_doc,
    reason = "one contract for every method, stated on the trait"
)]
pub trait Rows32: Copy {
    unsafe fn zero() -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// `acc + select(bits, a, 0) · b`, one rounding per lane.
    unsafe fn masked_fma(acc: Self, bits: u32, a: Self, b: f32) -> Self;
    /// `acc + select(bits, a, 0) · b` per lane with a vector `b`, one rounding per lane.
    unsafe fn masked_fmav(acc: Self, bits: u32, a: Self, b: Self) -> Self;
    /// `acc + a · b` per lane (fma).
    unsafe fn fma(acc: Self, a: Self, b: Self) -> Self;
    /// `a · b` per lane with a broadcast `b`.
    unsafe fn scale(a: Self, b: f32) -> Self;
    /// `a · b + c` per lane with a broadcast `b` (fma).
    unsafe fn fma_scalar(a: Self, b: f32, c: Self) -> Self;
    /// `select(bits, a, 0)`.
    unsafe fn select(bits: u32, a: Self) -> Self;
    /// `a + b` per lane.
    unsafe fn add(a: Self, b: Self) -> Self;
    /// `acc + select(bits, a, 0)` per lane.
    unsafe fn masked_add(acc: Self, bits: u32, a: Self) -> Self;
    /// `a − b` per lane.
    unsafe fn sub(a: Self, b: Self) -> Self;
    /// Lanes `l + 16·h` added for l < 16 (the first level of the fixed reduction tree).
    unsafe fn fold16(self, out: &mut [f32; 16]);
}

/// The portable block: plain arrays, one `mul_add` per lane.
#[derive(Clone, Copy)]
pub struct Portable([f32; 32]);

impl Rows32 for Portable {
    #[inline(always)]
    unsafe fn zero() -> Self {
        Portable([0.0; 32])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Portable(unsafe { std::ptr::read_unaligned(p as *const [f32; 32]) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 32], self.0) }
    }
    #[inline(always)]
    unsafe fn masked_fma(acc: Self, bits: u32, a: Self, b: f32) -> Self {
        Portable(std::array::from_fn(|l| {
            let x = if (bits >> l) & 1 == 1 { a.0[l] } else { 0.0 };
            x.mul_add(b, acc.0[l])
        }))
    }
    #[inline(always)]
    unsafe fn masked_fmav(acc: Self, bits: u32, a: Self, b: Self) -> Self {
        Portable(std::array::from_fn(|l| {
            let x = if (bits >> l) & 1 == 1 { a.0[l] } else { 0.0 };
            x.mul_add(b.0[l], acc.0[l])
        }))
    }
    #[inline(always)]
    unsafe fn fma(acc: Self, a: Self, b: Self) -> Self {
        Portable(std::array::from_fn(|l| a.0[l].mul_add(b.0[l], acc.0[l])))
    }
    #[inline(always)]
    unsafe fn scale(a: Self, b: f32) -> Self {
        Portable(a.0.map(|x| x * b))
    }
    #[inline(always)]
    unsafe fn fma_scalar(a: Self, b: f32, c: Self) -> Self {
        Portable(std::array::from_fn(|l| a.0[l].mul_add(b, c.0[l])))
    }
    #[inline(always)]
    unsafe fn select(bits: u32, a: Self) -> Self {
        Portable(std::array::from_fn(|l| {
            if (bits >> l) & 1 == 1 {
                a.0[l]
            } else {
                0.0
            }
        }))
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Portable(std::array::from_fn(|l| a.0[l] + b.0[l]))
    }
    #[inline(always)]
    unsafe fn masked_add(acc: Self, bits: u32, a: Self) -> Self {
        unsafe { Self::add(acc, Self::select(bits, a)) }
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        Portable(std::array::from_fn(|l| a.0[l] - b.0[l]))
    }
    #[inline(always)]
    unsafe fn fold16(self, out: &mut [f32; 16]) {
        *out = std::array::from_fn(|l| self.0[l] + self.0[l + 16]);
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Rows32;
    use std::arch::x86_64::*;

    /// Four 8-lane AVX registers; rows 8v..8v+8 in register v.
    #[derive(Clone, Copy)]
    pub struct Avx2([__m256; 4]);

    /// `SELECT[b][l]` is all ones where bit l of byte b is set.
    static SELECT: [[u32; 8]; 256] = {
        let mut t = [[0u32; 8]; 256];
        let mut b = 0;
        while b < 256 {
            let mut l = 0;
            while l < 8 {
                t[b][l] = if (b >> l) & 1 == 1 { u32::MAX } else { 0 };
                l += 1;
            }
            b += 1;
        }
        t
    };

    /// Lane l of register v selects bit 8v + l (one table load per register).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn expand(bits: u32) -> [__m256; 4] {
        std::array::from_fn(|v| {
            let row = &SELECT[((bits >> (8 * v)) & 0xFF) as usize];
            // SAFETY: a row of the table is 8 u32.
            unsafe { _mm256_loadu_ps(row.as_ptr() as *const f32) }
        })
    }

    impl Rows32 for Avx2 {
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn zero() -> Self {
            Avx2([_mm256_setzero_ps(); 4])
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn load(p: *const f32) -> Self {
            Avx2(std::array::from_fn(|v| unsafe {
                _mm256_loadu_ps(p.add(8 * v))
            }))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn store(self, p: *mut f32) {
            for v in 0..4 {
                unsafe { _mm256_storeu_ps(p.add(8 * v), self.0[v]) }
            }
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn masked_fma(acc: Self, bits: u32, a: Self, b: f32) -> Self {
            let m = expand(bits);
            let b = _mm256_set1_ps(b);
            Avx2(std::array::from_fn(|v| {
                _mm256_fmadd_ps(_mm256_and_ps(m[v], a.0[v]), b, acc.0[v])
            }))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn masked_fmav(acc: Self, bits: u32, a: Self, b: Self) -> Self {
            let m = expand(bits);
            Avx2(std::array::from_fn(|v| {
                _mm256_fmadd_ps(_mm256_and_ps(m[v], a.0[v]), b.0[v], acc.0[v])
            }))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fma(acc: Self, a: Self, b: Self) -> Self {
            Avx2(std::array::from_fn(|v| {
                _mm256_fmadd_ps(a.0[v], b.0[v], acc.0[v])
            }))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn scale(a: Self, b: f32) -> Self {
            let b = _mm256_set1_ps(b);
            Avx2(std::array::from_fn(|v| _mm256_mul_ps(a.0[v], b)))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fma_scalar(a: Self, b: f32, c: Self) -> Self {
            let b = _mm256_set1_ps(b);
            Avx2(std::array::from_fn(|v| _mm256_fmadd_ps(a.0[v], b, c.0[v])))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn select(bits: u32, a: Self) -> Self {
            let m = expand(bits);
            Avx2(std::array::from_fn(|v| _mm256_and_ps(m[v], a.0[v])))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn add(a: Self, b: Self) -> Self {
            Avx2(std::array::from_fn(|v| _mm256_add_ps(a.0[v], b.0[v])))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn masked_add(acc: Self, bits: u32, a: Self) -> Self {
            unsafe { Self::add(acc, Self::select(bits, a)) }
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn sub(a: Self, b: Self) -> Self {
            Avx2(std::array::from_fn(|v| _mm256_sub_ps(a.0[v], b.0[v])))
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fold16(self, out: &mut [f32; 16]) {
            let p = out.as_mut_ptr();
            unsafe {
                _mm256_storeu_ps(p, _mm256_add_ps(self.0[0], self.0[2]));
                _mm256_storeu_ps(p.add(8), _mm256_add_ps(self.0[1], self.0[3]));
            }
        }
    }

    /// Two 16-lane AVX-512 registers; the mask bits are used as `k` registers.
    #[derive(Clone, Copy)]
    pub struct Avx512([__m512; 2]);

    #[inline]
    fn halves(bits: u32) -> [__mmask16; 2] {
        [bits as u16, (bits >> 16) as u16]
    }

    impl Rows32 for Avx512 {
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn zero() -> Self {
            Avx512([_mm512_setzero_ps(); 2])
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn load(p: *const f32) -> Self {
            Avx512(std::array::from_fn(|v| unsafe {
                _mm512_loadu_ps(p.add(16 * v))
            }))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn store(self, p: *mut f32) {
            for v in 0..2 {
                unsafe { _mm512_storeu_ps(p.add(16 * v), self.0[v]) }
            }
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn masked_fma(acc: Self, bits: u32, a: Self, b: f32) -> Self {
            // Lanes whose bit is clear get 0·b added, as the other paths do (same signed zeros).
            let k = halves(bits);
            let b = _mm512_set1_ps(b);
            Avx512(std::array::from_fn(|v| {
                _mm512_mask3_fmadd_ps(a.0[v], b, acc.0[v], k[v])
            }))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn masked_fmav(acc: Self, bits: u32, a: Self, b: Self) -> Self {
            let k = halves(bits);
            Avx512(std::array::from_fn(|v| {
                _mm512_mask3_fmadd_ps(a.0[v], b.0[v], acc.0[v], k[v])
            }))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn fma(acc: Self, a: Self, b: Self) -> Self {
            Avx512(std::array::from_fn(|v| {
                _mm512_fmadd_ps(a.0[v], b.0[v], acc.0[v])
            }))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn scale(a: Self, b: f32) -> Self {
            let b = _mm512_set1_ps(b);
            Avx512(std::array::from_fn(|v| _mm512_mul_ps(a.0[v], b)))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn fma_scalar(a: Self, b: f32, c: Self) -> Self {
            let b = _mm512_set1_ps(b);
            Avx512(std::array::from_fn(|v| _mm512_fmadd_ps(a.0[v], b, c.0[v])))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn select(bits: u32, a: Self) -> Self {
            let k = halves(bits);
            Avx512(std::array::from_fn(|v| _mm512_maskz_mov_ps(k[v], a.0[v])))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn add(a: Self, b: Self) -> Self {
            Avx512(std::array::from_fn(|v| _mm512_add_ps(a.0[v], b.0[v])))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn masked_add(acc: Self, bits: u32, a: Self) -> Self {
            let k = halves(bits);
            Avx512(std::array::from_fn(|v| {
                _mm512_mask_add_ps(acc.0[v], k[v], acc.0[v], a.0[v])
            }))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn sub(a: Self, b: Self) -> Self {
            Avx512(std::array::from_fn(|v| _mm512_sub_ps(a.0[v], b.0[v])))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn fold16(self, out: &mut [f32; 16]) {
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), _mm512_add_ps(self.0[0], self.0[1])) }
        }
    }
}
