//! Dense products on strided matrices: one bounds-checked wrapper over the `gemm` crate, shared by
//! the IMP baseline's MLP and the exported network's prediction ([`super::network`]).
//!
//! Invariant: [`matmul`] asserts that every element it addresses lies inside its slice before the
//! unsafe call, so no caller can make it read or write out of bounds.

use crate::problem::data::Data;
use gemm::{gemm, Parallelism};

/// The element types the products take (the GEMM's f32 and f64 kernels).
pub trait Scalar: Copy + 'static {
    const ZERO: Self;
    const ONE: Self;
}

impl Scalar for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl Scalar for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// A strided matrix inside a slice: element (r, c) at `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub struct View<'a, T = f32> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

impl<'a, T: Copy> View<'a, T> {
    /// Element (r, c).
    pub fn at(&self, r: usize, c: usize) -> T {
        self.data[r * self.rs + c * self.cs]
    }
    /// Row-major with `cols` columns.
    pub fn rows(data: &'a [T], cols: usize) -> Self {
        Self {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// Column-major with columns `stride` apart.
    pub fn cols(data: &'a [T], stride: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: stride,
        }
    }
    /// Any strides: element (r, c) at `data[r·rs + c·cs]`.
    pub fn strided(data: &'a [T], rs: usize, cs: usize) -> Self {
        Self { data, rs, cs }
    }
    /// The same matrix from row `r0` on.
    pub fn from_row(self, r0: usize) -> Self {
        Self {
            data: &self.data[(r0 * self.rs).min(self.data.len())..],
            ..self
        }
    }
    /// Whether every element of a `rows × cols` block lies inside the slice.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

impl<'a> View<'a, f32> {
    /// The rows from `r0` on of a data set's X, read in place.
    pub fn inputs(data: &'a Data, r0: usize) -> Self {
        Self::cols(&data.xt()[r0..], data.ld())
    }
}

/// `dst = lhs · rhs` with dst m × n row-major, lhs m × k, rhs k × n. Checks that every element lies
/// inside its slice, so the GEMM call is sound.
pub fn matmul<T: Scalar>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    lhs: View<T>,
    rhs: View<T>,
) {
    assert!(m * n <= dst.len(), "matmul: dst out of bounds");
    assert!(
        lhs.holds(m, k) && rhs.holds(k, n),
        "matmul: operand out of bounds"
    );
    // SAFETY: the asserts above keep every addressed element inside its slice; dst is a unique
    // borrow, so it aliases neither operand.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            Parallelism::Rayon(0),
        );
    }
}
