//! Choosing the device KMeans runs on: `cpu`, `cuda`, `cuda:N`, `mps` (alias `metal`), `auto`.
//!
//! GPU backends are cargo features (`cuda`, `metal`), off by default because they need the
//! CUDA toolkit or macOS to build. Asking for a device that was not compiled in, or is not
//! present, is an error that says which; `auto` takes CUDA, then Metal, then the CPU, and
//! the chosen device's name is reported with every build.

use candle_core::Device;
use datafusion::error::{DataFusionError, Result};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
                _ => Err(DataFusionError::Plan(format!(
                    "unknown accelerator '{spec}'; expected one of {}",
                    Self::NAMES
                ))),
            },
        }
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

    /// `select(AcceleratorRequest::parse(spec)?)`.
    pub fn from_spec(spec: &str) -> Result<Self> {
        Self::select(AcceleratorRequest::parse(spec)?)
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Accelerator> {
    match Device::new_cuda(ordinal) {
        Ok(device) => Ok(Accelerator {
            device,
            name: format!("cuda:{ordinal}"),
        }),
        Err(e) => Err(DataFusionError::Execution(format!(
            "accelerator 'cuda:{ordinal}' is not available: {e}. This build has CUDA support; \
             check that an NVIDIA GPU and driver are present (nvidia-smi) and that the CUDA 13 \
             runtime libraries are on the library path, or use accelerator = 'cpu'"
        ))),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda(_ordinal: usize) -> Result<Accelerator> {
    Err(DataFusionError::Plan(
        "accelerator 'cuda' is not available: this vecfusion was built without the `cuda` \
         feature. Rebuild with `cargo build --features cuda` (see the README's GPU section) or \
         use accelerator = 'cpu' or 'auto'"
            .into(),
    ))
}

#[cfg(feature = "metal")]
fn metal() -> Result<Accelerator> {
    match Device::new_metal(0) {
        Ok(device) => Ok(Accelerator {
            device,
            name: "metal:0".into(),
        }),
        Err(e) => Err(DataFusionError::Execution(format!(
            "accelerator 'mps' is not available: {e}; use accelerator = 'cpu'"
        ))),
    }
}

#[cfg(not(feature = "metal"))]
fn metal() -> Result<Accelerator> {
    Err(DataFusionError::Plan(
        "accelerator 'mps' (Apple Metal) is not available: this vecfusion was built without \
         the `metal` feature. Rebuild on macOS with `cargo build --features metal`, or use \
         accelerator = 'cpu' or 'auto'"
            .into(),
    ))
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
    fn auto_falls_back_to_cpu_and_missing_backends_say_why() {
        let auto = Accelerator::select(AcceleratorRequest::Auto).unwrap();
        if !cfg!(any(feature = "cuda", feature = "metal")) {
            assert_eq!(auto.name, "cpu");
            let err = Accelerator::from_spec("cuda").unwrap_err().to_string();
            assert!(err.contains("without the `cuda` feature"), "{err}");
            let err = Accelerator::from_spec("mps").unwrap_err().to_string();
            assert!(err.contains("without the `metal` feature"), "{err}");
        }
    }
}
