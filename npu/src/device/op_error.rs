//! Why a device operation behind a hook failed: typed here, rendered into the hook's
//! `MmuError` (whose reasons are text, as the manager defines them) or `NpuError` at
//! the boundary.

use crate::DmaBufError;
use crate::dma::{DmaError, DmaStatus};

use super::NpuError;

/// A failed device operation (see the module docs).
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpError {
    /// A host address names a region the manager never mapped for DMA.
    #[error("host region {region} not registered")]
    UnknownRegion {
        /// The region's id.
        region: u32,
    },
    /// A host address lies beyond the end of its region.
    #[error("offset {offset:#x} beyond host region {region}")]
    BeyondRegion {
        /// The region's id.
        region: u32,
        /// Offset into it.
        offset: u64,
    },
    /// The DMA driver failed (submission, or no completion within the budget).
    #[error(transparent)]
    Dma(#[from] DmaError),
    /// The command queue failed (a FENCE ordering PTE writes).
    #[error(transparent)]
    Cmdq(#[from] crate::cmdq::CmdqError),
    /// The staging buffer could not be accessed.
    #[error(transparent)]
    Buffer(#[from] DmaBufError),
    /// A descriptor completed with an error status.
    #[error("{status:?}")]
    Failed {
        /// Its completion status.
        status: DmaStatus,
    },
    /// The engine stopped answering and the soft reset that followed failed too.
    #[error("{source}; the soft reset failed too: {reset}")]
    ResetFailed {
        /// Why the engine was reset.
        #[source]
        source: DmaError,
        /// Why the reset failed.
        reset: Box<NpuError>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_render_as_the_driver_reported_them() {
        assert_eq!(OpError::Failed { status: DmaStatus::HostRead }.to_string(), "HostRead");
        assert_eq!(OpError::UnknownRegion { region: 3 }.to_string(), "host region 3 not registered");
        let timeout = DmaError::Timeout { channel: 1, missing: 2, budget_ns: 5 };
        let e = OpError::ResetFailed { source: timeout, reset: Box::new(NpuError::Lost) };
        assert!(
            e.to_string()
                .ends_with("; the soft reset failed too: the NPU is lost: it stopped answering and could not be reset")
        );
        assert!(std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("2 completion(s) missing")));
    }
}
