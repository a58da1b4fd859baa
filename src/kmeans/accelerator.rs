//! Choosing the device KMeans runs on: `cpu`, `cuda`, `cuda:N`, `mps` (alias `metal`), `auto`.
//!
//! GPU backends are cargo features (`cuda`, `metal`), off by default because they need the
//! CUDA toolkit or macOS to build. Asking for a device that was not compiled in, or is not
//! present, is an error that says which; `auto` takes CUDA, then Metal, then the CPU, and
//! the chosen device's name is reported with every build.

use std::fmt;

use candle_core::Device;
use datafusion::common::plan_err;
use datafusion::error::{DataFusionError, Result};
use serde::{Deserialize, Serialize};

/// What the user asked for (the `accelerator` option), parsed once when the statement is
/// planned. The device itself is opened only when the work runs ([`Accelerator::select`]),
/// so planning or `EXPLAIN` never initialises a GPU. Stored in manifests as its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum AcceleratorRequest {
    Cpu,
    Cuda(usize),
    Metal,
    Auto,
}

impl AcceleratorRequest {
    pub const NAMES: &'static str = "'cpu', 'cuda', 'cuda:N', 'mps' (or 'metal'), 'auto'";

    pub fn parse(spec: &str) -> Result<Self> {
        let s = spec.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            "mps" | "metal" => Ok(Self::Metal),
            "auto" => Ok(Self::Auto),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => plan_err!(
                    "unknown accelerator '{spec}'; expected one of {}",
                    Self::NAMES
                ),
            },
        }
    }
}

impl fmt::Display for AcceleratorRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => f.write_str("mps"),
            Self::Auto => f.write_str("auto"),
        }
    }
}

impl From<AcceleratorRequest> for String {
    fn from(request: AcceleratorRequest) -> Self {
        request.to_string()
    }
}

impl TryFrom<String> for AcceleratorRequest {
    type Error = DataFusionError;
    fn try_from(spec: String) -> Result<Self> {
        Self::parse(&spec)
    }
}

/// A selected device.
#[derive(Debug, Clone)]
pub struct Accelerator {
    pub device: Device,
    /// `cpu`, `cuda:0`, `metal:0`.
    pub name: String,
}

impl Accelerator {
    pub fn cpu() -> Self {
        Self {
            device: Device::Cpu,
            name: "cpu".into(),
        }
    }

    pub fn is_cpu(&self) -> bool {
        self.device.is_cpu()
    }

    /// Resolves a request to a device, or explains why it cannot be had.
    pub fn select(request: AcceleratorRequest) -> Result<Self> {
        match request {
            AcceleratorRequest::Cpu => Ok(Self::cpu()),
            AcceleratorRequest::Cuda(ordinal) => cuda(ordinal),
            AcceleratorRequest::Metal => metal(),
            AcceleratorRequest::Auto => {
                Ok(cuda(0).or_else(|_| metal()).unwrap_or_else(|_| Self::cpu()))
            }
        }
    }

    /// Free memory on the device in bytes, where the device can say (CUDA); `None` for the
    /// CPU and Metal.
    pub fn free_memory(&self) -> Option<usize> {
        #[cfg(feature = "cuda")]
        if let Ok(cuda) = self.device.as_cuda_device() {
            return cuda
                .cuda_stream()
                .context()
                .mem_get_info()
                .ok()
                .map(|(free, _total)| free);
        }
        None
    }

    /// `select(AcceleratorRequest::parse(spec)?)`.
    pub fn from_spec(spec: &str) -> Result<Self> {
        Self::select(AcceleratorRequest::parse(spec)?)
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Accelerator> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    /// Devices opened so far, by ordinal. Opening one creates a CUDA context and candle loads
    /// its kernel modules into it on first use; keeping the device lets the next build in the
    /// same process (the shell, a notebook, a benchmark's warm-up) skip both.
    static OPENED: OnceLock<Mutex<HashMap<usize, Device>>> = OnceLock::new();
    let opened = OPENED.get_or_init(Default::default);
    if let Some(device) = opened.lock().expect("device cache lock").get(&ordinal) {
        return Ok(Accelerator {
            device: device.clone(),
            name: format!("cuda:{ordinal}"),
        });
    }
    let unavailable = |why: String| {
        datafusion::common::exec_err!(
            "accelerator 'cuda:{ordinal}' is not available: {why}. This build has CUDA support; \
             use accelerator = 'cpu' (or 'auto', which falls back to the CPU)"
        )
    };
    // The libraries are loaded at run time (see `cuda_libraries`): name a missing one here
    // rather than let the CUDA backend panic on it.
    if let Some(why) = super::cuda_libraries::unavailable_reason(super::cuda_libraries::LIBRARIES) {
        return unavailable(why);
    }
    // A backstop: a library that loads but lacks a symbol still panics inside cudarc.
    let opened_device = std::panic::catch_unwind(|| Device::new_cuda(ordinal)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the CUDA backend panicked while opening the device".into())
    });
    match opened_device {
        Ok(Ok(device)) => {
            opened
                .lock()
                .expect("device cache lock")
                .insert(ordinal, device.clone());
            Ok(Accelerator {
                device,
                name: format!("cuda:{ordinal}"),
            })
        }
        Ok(Err(e)) => unavailable(format!(
            "{e} (check that an NVIDIA GPU with this ordinal is present: nvidia-smi)"
        )),
        Err(panic) => unavailable(panic),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda(_ordinal: usize) -> Result<Accelerator> {
    plan_err!(
        "accelerator 'cuda' is not available: this vecfusion was built without the `cuda` \
         feature. Rebuild with `scripts/build-cuda.sh` (the `cuda` feature of the vecfusion \
         crates; see the README's GPU section) or use accelerator = 'cpu' or 'auto'"
    )
}

#[cfg(feature = "metal")]
fn metal() -> Result<Accelerator> {
    match Device::new_metal(0) {
        Ok(device) => Ok(Accelerator {
            device,
            name: "metal:0".into(),
        }),
        Err(e) => datafusion::common::exec_err!(
            "accelerator 'mps' is not available: {e}; use accelerator = 'cpu'"
        ),
    }
}

#[cfg(not(feature = "metal"))]
fn metal() -> Result<Accelerator> {
    plan_err!(
        "accelerator 'mps' (Apple Metal) is not available: this vecfusion was built without \
         the `metal` feature. Rebuild on macOS with `cargo build --features metal`, or use \
         accelerator = 'cpu' or 'auto'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        assert_eq!(
            AcceleratorRequest::parse("CPU").unwrap(),
            AcceleratorRequest::Cpu
        );
        assert_eq!(
            AcceleratorRequest::parse("cuda:3").unwrap(),
            AcceleratorRequest::Cuda(3)
        );
        assert_eq!(
            AcceleratorRequest::parse("metal").unwrap(),
            AcceleratorRequest::Metal
        );
        let err = AcceleratorRequest::parse("tpu").unwrap_err().to_string();
        assert!(err.contains("'cpu', 'cuda'"), "{err}");
    }

    #[test]
    fn every_build_names_its_devices_and_says_why_one_is_missing() {
        let cuda = Accelerator::from_spec("cuda");
        match &cuda {
            Ok(device) => {
                // Only a CUDA build can open CUDA.
                assert!(
                    device.name == "cuda:0" && cfg!(feature = "cuda"),
                    "{}",
                    device.name
                );
                assert!(!device.is_cpu());
            }
            Err(e) if cfg!(feature = "cuda") => {
                // A CUDA build on a machine without a usable GPU: it started (the libraries
                // are loaded at run time) and says what is missing.
                let e = e.to_string();
                assert!(
                    e.contains("'cuda:0' is not available") && e.contains("has CUDA support"),
                    "{e}"
                );
                if !super::super::cuda_libraries::LIBRARIES[0].is_present() {
                    assert!(e.contains("libcuda.so.1"), "{e}");
                }
            }
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains("without the `cuda` feature"), "{e}");
            }
        }
        let metal = Accelerator::from_spec("mps");
        match &metal {
            Ok(device) => assert_eq!(device.name, "metal:0"),
            Err(e) if cfg!(feature = "metal") => {
                assert!(e.to_string().contains("'mps' is not available"), "{e}")
            }
            Err(e) => assert!(e.to_string().contains("without the `metal` feature"), "{e}"),
        }
        // `auto` takes CUDA, then Metal, then the CPU.
        let auto = Accelerator::select(AcceleratorRequest::Auto).unwrap();
        let expected = match (&cuda, &metal) {
            (Ok(_), _) => "cuda:0",
            (Err(_), Ok(_)) => "metal:0",
            _ => "cpu",
        };
        assert_eq!(auto.name, expected);
        let err = Accelerator::from_spec("cuda:99").unwrap_err().to_string();
        assert!(err.contains("cuda"), "{err}");
    }

    #[test]
    fn a_request_round_trips_through_its_text() {
        for spec in ["cpu", "cuda:2", "mps", "auto"] {
            let request = AcceleratorRequest::parse(spec).unwrap();
            assert_eq!(request.to_string(), spec);
            let json = serde_json::to_string(&request).unwrap();
            assert_eq!(json, format!("\"{spec}\""));
            assert_eq!(
                serde_json::from_str::<AcceleratorRequest>(&json).unwrap(),
                request
            );
        }
        assert!(serde_json::from_str::<AcceleratorRequest>("\"tpu\"").is_err());
    }
}
