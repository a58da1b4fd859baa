//! The shared libraries a CUDA build opens at run time, and a look for them before a device
//! is opened.
//!
//! `scripts/build-cuda.sh` builds candle with cudarc's dynamic *loading* instead of its
//! dynamic *linking*, so a CUDA binary has no link-time dependency on the NVIDIA driver and
//! starts on any machine; the driver and the CUDA libraries are opened the first time a CUDA
//! device is asked for. cudarc panics when one of them is missing, so
//! [`unavailable_reason`] looks for each one first (as the loader will: by file name, on the
//! library path) and says which is missing. The file names are CUDA 13's, the toolkit the
//! script builds against. This code needs no GPU and no CUDA build: every build compiles and
//! tests it.

/// One library and the file names it may have, most specific first.
#[derive(Debug, Clone, Copy)]
pub struct CudaLibrary {
    /// What it is, for messages ("the NVIDIA driver", "cuBLAS").
    pub what: &'static str,
    pub file_names: &'static [&'static str],
}

/// Every library candle's CUDA backend opens: the driver when a device is created, cuBLAS and
/// cuRAND when candle sets the device up, cuBLASLt and NVRTC on first use.
pub const LIBRARIES: &[CudaLibrary] = &[
    CudaLibrary {
        what: "the NVIDIA driver",
        file_names: &["libcuda.so.1", "libcuda.so"],
    },
    CudaLibrary {
        what: "cuBLAS",
        file_names: &["libcublas.so.13", "libcublas.so"],
    },
    CudaLibrary {
        what: "cuBLASLt",
        file_names: &["libcublasLt.so.13", "libcublasLt.so"],
    },
    CudaLibrary {
        what: "cuRAND",
        file_names: &["libcurand.so.10", "libcurand.so"],
    },
    CudaLibrary {
        what: "NVRTC",
        file_names: &["libnvrtc.so.13", "libnvrtc.so"],
    },
];

impl CudaLibrary {
    /// Whether the dynamic loader finds one of its file names. Loading runs the library's
    /// initialisers, exactly as the CUDA backend's own load would a moment later.
    pub fn is_present(&self) -> bool {
        self.file_names.iter().any(|name| {
            // SAFETY: these are NVIDIA's libraries (or whatever the user put under their
            // names on the library path), which the CUDA backend is about to load anyway;
            // the handle is closed again right away.
            unsafe { libloading::Library::new(*name) }.is_ok()
        })
    }
}

/// The libraries of `libraries` the loader cannot find.
pub fn missing(libraries: &[CudaLibrary]) -> Vec<CudaLibrary> {
    libraries
        .iter()
        .filter(|l| !l.is_present())
        .copied()
        .collect()
}

/// `None` when every library in `libraries` can be loaded; otherwise why not: each missing
/// one, the file names looked for, and what to do.
pub fn unavailable_reason(libraries: &[CudaLibrary]) -> Option<String> {
    let missing = missing(libraries);
    if missing.is_empty() {
        return None;
    }
    let list = missing
        .iter()
        .map(|l| format!("{} ({})", l.what, l.file_names.join(" or ")))
        .collect::<Vec<_>>()
        .join(", ");
    let remedy = if missing.iter().any(|l| l.file_names[0] == "libcuda.so.1") {
        "this machine has no NVIDIA driver, or its library folder is not on the library path \
         (check nvidia-smi)"
    } else {
        "install the CUDA 13 runtime libraries (PyTorch's nvidia-* Python packages carry them) \
         and add their lib folders to LD_LIBRARY_PATH"
    };
    Some(format!("cannot load {list}: {remedy}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_the_loader_finds_is_present() {
        // The C library every Linux process already has loaded.
        let libc = CudaLibrary {
            what: "the C library",
            file_names: &["libc.so.6"],
        };
        assert!(libc.is_present());
        assert_eq!(unavailable_reason(&[libc]), None);
    }

    #[test]
    fn a_missing_library_is_named_with_what_to_do() {
        let absent = CudaLibrary {
            what: "cuFAKE",
            file_names: &[
                "libcufake-vecfusion-test.so.13",
                "libcufake-vecfusion-test.so",
            ],
        };
        let libc = CudaLibrary {
            what: "the C library",
            file_names: &["libc.so.6"],
        };
        assert_eq!(missing(&[libc, absent]).len(), 1);
        let err = unavailable_reason(&[libc, absent]).unwrap();
        assert!(
            err.contains("cannot load cuFAKE (libcufake-vecfusion-test.so.13 or")
                && err.contains("LD_LIBRARY_PATH")
                && !err.contains("C library"),
            "{err}"
        );
    }

    #[test]
    fn without_a_driver_the_error_says_so() {
        // CI machines have no NVIDIA driver; where one is installed this checks nothing.
        let driver = LIBRARIES[0];
        if driver.is_present() {
            return;
        }
        let err = unavailable_reason(LIBRARIES).unwrap();
        assert!(
            err.contains("the NVIDIA driver (libcuda.so.1 or libcuda.so)")
                && err.contains("no NVIDIA driver"),
            "{err}"
        );
    }
}
