//! Which instruction set a kernel runs with.
//!
//! The workspace is compiled for the baseline x86-64 CPU (SSE2), so that one binary runs on
//! every machine; the kernels choose at run time. Two kinds of kernel exist:
//!
//! - hand-written intrinsics ([`crate::nearest`]'s register tiles), one function per path;
//! - plain Rust loops written so that LLVM vectorises them, compiled once per path by
//!   [`kernel!`]: the same source becomes 4-lane SSE2, 8-lane AVX2 or 16-lane AVX-512 code.
//!   The loops keep independent per-lane accumulators and never fuse multiplies into FMAs
//!   (Rust does not contract `a * b + c`), so every path computes bit-identical results.
//!
//! Every kernel has a `*_on(path, ...)` form that runs one given path, so the tests run every
//! path the host supports: an AVX-512 machine tests its AVX2 and portable code too.

/// The environment variable that caps the path kernels choose (`avx512`, `avx2` or
/// `portable`): the widest path the CPU has, but no wider.
pub const CAP_VARIABLE: &str = "VECFUSION_KERNEL_PATH";

/// The implementations a kernel has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// AVX-512 F, BW, VL and DQ (Skylake-SP and later Xeons, Zen 4 and later EPYCs).
    Avx512,
    /// AVX2 + FMA.
    Avx2,
    /// Plain Rust for the baseline CPU.
    Portable,
}

impl KernelPath {
    /// Every path this CPU can run, widest first (always ends with `Portable`).
    pub fn supported() -> Vec<KernelPath> {
        [KernelPath::Avx512, KernelPath::Avx2, KernelPath::Portable]
            .into_iter()
            .filter(|p| p.available())
            .collect()
    }

    /// The widest path this CPU can run (detected once), at most the one named by
    /// [`CAP_VARIABLE`] when it is set: an AVX-512 machine then measures, or reproduces, what
    /// an AVX2-only one runs.
    pub fn best() -> KernelPath {
        static BEST: std::sync::OnceLock<KernelPath> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let cap = std::env::var(CAP_VARIABLE).ok();
            let (path, unknown) = Self::capped(&Self::supported(), cap.as_deref());
            if unknown {
                eprintln!(
                    "vecfusion: ignoring {CAP_VARIABLE}={}: expected avx512, avx2 or portable",
                    cap.unwrap_or_default()
                );
            }
            path
        })
    }

    /// The widest of `supported` (widest first) that is at most `cap`, and whether `cap` was
    /// a name this does not know (then it is ignored).
    fn capped(supported: &[KernelPath], cap: Option<&str>) -> (KernelPath, bool) {
        let widest = supported.first().copied().unwrap_or(KernelPath::Portable);
        let order = |p: KernelPath| match p {
            KernelPath::Portable => 0,
            KernelPath::Avx2 => 1,
            KernelPath::Avx512 => 2,
        };
        let limit = match cap.map(|c| c.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") => return (widest, false),
            Some("avx512") => KernelPath::Avx512,
            Some("avx2") => KernelPath::Avx2,
            Some("portable") => KernelPath::Portable,
            Some(_) => return (widest, true),
        };
        let path = supported
            .iter()
            .copied()
            .find(|p| order(*p) <= order(limit))
            .unwrap_or(KernelPath::Portable);
        (path, false)
    }

    /// Whether this CPU can run the path (detected once: kernels ask on every call).
    #[inline]
    pub fn available(self) -> bool {
        static WIDE: std::sync::OnceLock<[bool; 2]> = std::sync::OnceLock::new();
        let [avx512, avx2] = *WIDE.get_or_init(detect_wide_paths);
        match self {
            KernelPath::Avx512 => avx512,
            KernelPath::Avx2 => avx2,
            KernelPath::Portable => true,
        }
    }
}

/// `[AVX-512, AVX2]`: whether the CPU has every feature each path is compiled with.
fn detect_wide_paths() -> [bool; 2] {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma");
        let avx512 =
            avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512dq");
        [avx512, avx2]
    }
    #[cfg(not(target_arch = "x86_64"))]
    [false, false]
}

/// Defines a kernel from an `#[inline(always)]` body function: `pub fn $name(args)` runs
/// the body compiled for [`KernelPath::best`], and `pub fn $on(path, args)` for `path` (a
/// path the CPU lacks runs the portable code). Arguments are plain `name: Type` pairs.
macro_rules! kernel {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident / $on:ident ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
            = $body:path;
    ) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            $on($crate::path::KernelPath::best(), $($arg),*)
        }

        #[doc = concat!("[`", stringify!($name), "`] on one [`KernelPath`](crate::path::KernelPath).")]
        #[allow(clippy::too_many_arguments)]
        $vis fn $on(path: $crate::path::KernelPath, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                match path {
                    // SAFETY: `available` checked that the CPU has every feature the
                    // function is compiled with; the body itself is safe Rust.
                    $crate::path::KernelPath::Avx512 if path.available() => {
                        return unsafe { avx512($($arg),*) };
                    }
                    // SAFETY: as above.
                    $crate::path::KernelPath::Avx2 if path.available() => {
                        return unsafe { avx2($($arg),*) };
                    }
                    _ => {}
                }
            }
            let _ = path;
            $body($($arg),*)
        }
    };
}

pub(crate) use kernel;

#[cfg(test)]
mod tests {
    use super::KernelPath;

    #[test]
    fn the_supported_paths_include_avx2_wherever_it_exists() {
        let paths = KernelPath::supported();
        // An AVX-512 host runs the AVX2 path too, so machines of either kind test both.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            assert!(paths.contains(&KernelPath::Avx2), "{paths:?}");
        }
        // `best` is the widest, or what `VECFUSION_KERNEL_PATH` caps it to.
        let cap = std::env::var(super::CAP_VARIABLE).ok();
        assert_eq!(
            KernelPath::capped(&paths, cap.as_deref()).0,
            KernelPath::best()
        );
        assert_eq!(paths.last(), Some(&KernelPath::Portable));
    }

    #[test]
    fn a_cap_picks_the_widest_path_no_wider_than_it() {
        use KernelPath::{Avx2, Avx512, Portable};
        let all = [Avx512, Avx2, Portable];
        assert_eq!(KernelPath::capped(&all, None), (Avx512, false));
        assert_eq!(KernelPath::capped(&all, Some("AVX2")), (Avx2, false));
        assert_eq!(
            KernelPath::capped(&all, Some("portable")),
            (Portable, false)
        );
        assert_eq!(
            KernelPath::capped(&[Avx2, Portable], Some("avx512")),
            (Avx2, false)
        );
        assert_eq!(
            KernelPath::capped(&[Portable], Some("avx2")),
            (Portable, false)
        );
        // An unknown name is reported and ignored.
        assert_eq!(KernelPath::capped(&all, Some("sse9")), (Avx512, true));
    }
}
