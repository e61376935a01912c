//! `pcll-kernels`: the inner loops of pcll's CPU forward pass.
//!
//! - [`matvec_f32`]: f32 weights times a vector.
//! - [`matvec_i8`]: an `int` tensor kept as its symbols (centred, one byte per weight) and row
//!   scales, times an f32 vector, bit for bit the product with the dequantized f32 weights
//!   (what `pcll eval` and `generate` use by default: weights stay a quarter of their f32 size
//!   in memory and the result does not change).
//! - [`quantize_i16`] + [`matvec_i16`]: the activation row rounded to 16-bit integers on one
//!   scale and integer dot products with the symbols (`--fast`: faster, not bit-exact, about
//!   1e-5 relative; one integer multiply-add per weight where llama.cpp's and llama2.c's Q8_0
//!   paths round activations to 8 bits per block of 32 and pay a float step per block).
//!
//! Every kernel is written once, in safe Rust ([`portable`]). With the `dispatch` feature (it
//! needs `std` for CPU detection) the same functions are also compiled for AVX2 and for
//! AVX-512 and [`Isa::best`] picks the widest the CPU has, at run time; the results are the
//! same bits whichever runs (`tests/dispatch.rs` checks it on every ISA the machine has). The
//! calls into those builds, after the CPU check, are the crate's only unsafe code.
#![no_std]
#![deny(unsafe_code)]

#[cfg(feature = "dispatch")]
extern crate std;

pub mod portable;

/// Partial sums of a dot product (the summation order of [`portable::dot_f32`]).
pub const LANES: usize = 16;

/// An instruction set the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Isa {
    /// The build's own target (x86-64: SSE2), always available.
    Portable,
    /// AVX2 (x86-64, `dispatch` feature).
    Avx2,
    /// AVX-512 F + BW + VL (x86-64, `dispatch` feature).
    Avx512,
}

impl Isa {
    /// Every ISA, narrowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// The widest ISA this CPU runs and this build has kernels for.
    pub fn best() -> Isa {
        if Isa::Avx512.available() {
            Isa::Avx512
        } else if Isa::Avx2.available() {
            Isa::Avx2
        } else {
            Isa::Portable
        }
    }

    /// Whether this build has kernels for `self` and the CPU runs them.
    pub fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(all(feature = "dispatch", target_arch = "x86_64"))]
            Isa::Avx2 => std::is_x86_feature_detected!("avx2"),
            #[cfg(all(feature = "dispatch", target_arch = "x86_64"))]
            Isa::Avx512 => {
                std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// `portable`, `avx2` or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// Declares each kernel of [`portable`] three times: compiled for AVX2 and for AVX-512 (with
/// `dispatch` on x86-64), as a method of [`Isa`] that runs the build asked for (the portable
/// one when the CPU lacks it), and as a free function on [`Isa::best`].
macro_rules! kernels {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;)*) => {
        #[cfg(all(feature = "dispatch", target_arch = "x86_64"))]
        mod avx2 {
            $(
                #[target_feature(enable = "avx2")]
                pub fn $name($($arg: $ty),*) $(-> $ret)? {
                    super::portable::$name($($arg),*)
                }
            )*
        }

        #[cfg(all(feature = "dispatch", target_arch = "x86_64"))]
        mod avx512 {
            $(
                #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
                pub fn $name($($arg: $ty),*) $(-> $ret)? {
                    super::portable::$name($($arg),*)
                }
            )*
        }

        impl Isa {
            $(
                $(#[$doc])*
                ///
                /// Runs the build for `self` where the CPU has it, else the portable one.
                pub fn $name(self, $($arg: $ty),*) $(-> $ret)? {
                    match self {
                        #[cfg(all(feature = "dispatch", target_arch = "x86_64"))]
                        // SAFETY: the build's only requirement is the AVX2 target feature, and
                        // `available` has just checked that this CPU has it.
                        #[allow(unsafe_code)]
                        Isa::Avx2 if self.available() => unsafe { avx2::$name($($arg),*) },
                        #[cfg(all(feature = "dispatch", target_arch = "x86_64"))]
                        // SAFETY: the build needs AVX-512 F, BW and VL, all three checked by
                        // `available` just now.
                        #[allow(unsafe_code)]
                        Isa::Avx512 if self.available() => unsafe { avx512::$name($($arg),*) },
                        _ => portable::$name($($arg),*),
                    }
                }
            )*
        }

        $(
            $(#[$doc])*
            ///
            /// On [`Isa::best`].
            pub fn $name($($arg: $ty),*) $(-> $ret)? {
                Isa::best().$name($($arg),*)
            }
        )*
    };
}

kernels! {
    /// [`portable::dot_f32`].
    fn dot_f32(a: &[f32], b: &[f32]) -> f32;
    /// [`portable::matvec_f32`].
    fn matvec_f32(x: &[f32], w: &[f32], ldw: usize, y: &mut [f32]);
    /// [`portable::vecmat_f32`].
    fn vecmat_f32(x: &[f32], b: &[f32], ldb: usize, y: &mut [f32]);
    /// [`portable::matvec_i8`].
    fn matvec_i8(x: &[f32], w: &[i8], scales: &[f32], y: &mut [f32]);
    /// [`portable::quantize_i16`].
    fn quantize_i16(x: &[f32], xq: &mut [i16]) -> f32;
    /// [`portable::matvec_i16`].
    fn matvec_i16(xq: &[i16], d: f32, w: &[i8], scales: &[f32], y: &mut [f32]);
}
