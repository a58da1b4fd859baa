//! vecfusion's plans in a form another process can run: the logical and physical extension
//! codecs that DataFusion's protobuf serialisation (`datafusion-proto`) calls for the plan
//! nodes and the table provider vecfusion adds. A cluster (Ballista: `crates/cluster`) ships
//! a client's logical plan to its scheduler and the scheduler's physical plans to executors
//! through them.
//!
//! A node crosses as the recipe it was made from — a dataset version ([`DatasetRef`]), the
//! request, the options — never as in-memory state: the receiving process opens the same
//! version from storage every process sees (a shared directory or `s3://`) and makes the
//! same node again, with the constructors the node's own module offers. What it receives is
//! checked as any input is (a version that does not exist, a column that is not a vector,
//! a query of the wrong dimension), since it crossed a network.
//!
//! Payloads are JSON behind a 4-byte tag ([`TAG`]); expressions inside them use
//! DataFusion's own protobuf form. A payload without the tag is not vecfusion's, and the
//! codecs hand it to the codec they were composed with (Ballista's).

mod blocking;
mod dataset_ref;
mod exprs;
mod logical;
mod physical;
mod rows;
#[cfg(test)]
mod tests;

pub use dataset_ref::DatasetRef;
pub use logical::VecfusionLogicalCodec;
pub use physical::VecfusionPhysicalCodec;

use datafusion::common::{plan_datafusion_err, plan_err};
use datafusion::error::Result;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first bytes of every payload vecfusion's codecs write (the last byte is the format
/// version).
pub const TAG: &[u8; 4] = b"VFC\x01";

/// Whether `buf` is a payload of vecfusion's codecs.
fn is_ours(buf: &[u8]) -> bool {
    buf.starts_with(TAG)
}

fn encode<T: Serialize>(payload: &T, buf: &mut Vec<u8>) -> Result<()> {
    buf.extend_from_slice(TAG);
    serde_json::to_writer(buf, payload)
        .map_err(|e| plan_datafusion_err!("cannot encode a vecfusion plan node: {e}"))
}

fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<T> {
    let Some(body) = buf.strip_prefix(TAG.as_slice()) else {
        return plan_err!(
            "not a vecfusion plan node (it has no vecfusion tag); the process that sent it \
             needs vecfusion's codecs"
        );
    };
    serde_json::from_slice(body).map_err(|e| {
        plan_datafusion_err!(
            "cannot decode a vecfusion plan node ({e}); the processes of a cluster must run \
             the same vecfusion version"
        )
    })
}
