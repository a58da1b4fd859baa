//! Minimal `.npy` (NumPy array file) reading and writing for `float32` matrices, so the
//! benchmarks and the Python side exchange data without conversions.

use std::io::{Read, Write};
use std::path::Path;

use datafusion::common::exec_datafusion_err;
use datafusion::error::{DataFusionError, Result};

fn err(e: impl std::fmt::Display) -> DataFusionError {
    exec_datafusion_err!("{e}")
}

/// Reads a C-order `<f4` matrix: (values, rows, cols). A 1-D array is one column.
pub fn read_f32(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let mut f = std::fs::File::open(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic).map_err(err)?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(err(format!("{} is not a .npy file", path.display())));
    }
    let header_len = if magic[6] == 1 {
        let mut b = [0u8; 2];
        f.read_exact(&mut b).map_err(err)?;
        u16::from_le_bytes(b) as usize
    } else {
        let mut b = [0u8; 4];
        f.read_exact(&mut b).map_err(err)?;
        u32::from_le_bytes(b) as usize
    };
    let mut header = vec![0u8; header_len];
    f.read_exact(&mut header).map_err(err)?;
    let header = String::from_utf8_lossy(&header);
    if !header.contains("'descr': '<f4'") || header.contains("'fortran_order': True") {
        return Err(err(format!(
            "{}: expected a C-order float32 array, header is {header}",
            path.display()
        )));
    }
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| err("no shape in .npy header"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(err))
        .collect::<Result<_>>()?;
    let (rows, cols) = match dims.as_slice() {
        [r] => (*r, 1),
        [r, c] => (*r, *c),
        _ => return Err(err(format!("expected a matrix, got shape {dims:?}"))),
    };
    let mut bytes = Vec::with_capacity(rows * cols * 4);
    f.read_to_end(&mut bytes).map_err(err)?;
    if bytes.len() != rows * cols * 4 {
        return Err(err(format!("{}: truncated data", path.display())));
    }
    let values = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((values, rows, cols))
}

/// Writes a C-order `<f4` matrix.
pub fn write_f32(path: &Path, values: &[f32], rows: usize, cols: usize) -> Result<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::fs::File::create(path).map_err(err)?;
    f.write_all(b"\x93NUMPY\x01\x00").map_err(err)?;
    f.write_all(&(header.len() as u16).to_le_bytes())
        .map_err(err)?;
    f.write_all(header.as_bytes()).map_err(err)?;
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    f.write_all(&bytes).map_err(err)
}
