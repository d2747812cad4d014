//! The raw `extern "C"` surface of `csrc/shim.cpp`. Only `model.rs` and `cosim.rs` use it.
//!
//! build.rs compiles the shim once per Verilated build of the RTL: `npu_*` for the
//! shipped model, `npu_plain_*` for the plain reference build (feature `plain-model`).
//! [`ModelApi`] gathers one build's entry points so `Model` can drive either.

use std::ffi::{c_char, c_int, c_void};

/// The entry points of one build of the model (see the `extern` blocks for each one's
/// contract).
pub struct ModelApi {
    /// Creates a model (and its Verilator context); never returns null.
    pub new: unsafe extern "C" fn() -> *mut c_void,
    /// Closes any trace, runs `final` and frees the model.
    pub delete: unsafe extern "C" fn(*mut c_void),
    /// Looks up a port by name; 0 on success with its address and size in bytes.
    pub port: unsafe extern "C" fn(*mut c_void, *const c_char, *mut *mut c_void, *mut u32) -> c_int,
    /// Evaluates the model once.
    pub eval: unsafe extern "C" fn(*mut c_void),
    /// Non-zero once an RTL assertion failed.
    pub got_error: unsafe extern "C" fn(*mut c_void) -> c_int,
    /// Opens an FST trace: 0 ok, -1 already open, -2 cannot write, -3 no trace support.
    pub trace_open: unsafe extern "C" fn(*mut c_void, *const c_char, c_int) -> c_int,
    /// Dumps the current signal values at a time in picoseconds.
    pub trace_dump: unsafe extern "C" fn(*mut c_void, u64),
    /// Flushes and closes the trace.
    pub trace_close: unsafe extern "C" fn(*mut c_void),
    /// Records the whole model state: 0 ok, -1 no fixed-point probe in this build.
    pub ff_snapshot: unsafe extern "C" fn(*mut c_void) -> c_int,
    /// 1 if the state equals the snapshot but for the performance counters (each
    /// incrementing by 0 or 1): a fixed point; 0 if not; -1 without snapshot or probe.
    pub ff_unchanged: unsafe extern "C" fn(*mut c_void) -> c_int,
}

unsafe extern "C" {
    /// Creates a model (and its Verilator context); never returns null.
    fn npu_new() -> *mut c_void;
    /// Closes any trace, runs `final` and frees the model.
    fn npu_delete(handle: *mut c_void);
    /// Looks up a port by name; 0 on success with its address and size in bytes.
    fn npu_port(handle: *mut c_void, name: *const c_char, addr: *mut *mut c_void, bytes: *mut u32) -> c_int;
    /// Evaluates the model once.
    fn npu_eval(handle: *mut c_void);
    /// Non-zero once an RTL assertion failed.
    fn npu_got_error(handle: *mut c_void) -> c_int;
    /// Opens an FST trace of `depth` hierarchy levels from `npu_top` (0: all): 0 ok,
    /// -1 already open, -2 cannot write the file, -3 no trace support in this build.
    fn npu_trace_open(handle: *mut c_void, path: *const c_char, depth: c_int) -> c_int;
    /// Dumps the current signal values at `time` (picoseconds).
    fn npu_trace_dump(handle: *mut c_void, time: u64);
    /// Flushes and closes the trace.
    fn npu_trace_close(handle: *mut c_void);
    /// Records the whole model state: 0 ok, -1 no fixed-point probe in this build.
    fn npu_ff_snapshot(handle: *mut c_void) -> c_int;
    /// 1 at a fixed point since the snapshot, 0 if not, -1 without snapshot or probe.
    fn npu_ff_unchanged(handle: *mut c_void) -> c_int;
}

/// The shipped model (build.rs's optimised build, with trace support).
pub static SHIPPED: ModelApi = ModelApi {
    new: npu_new,
    delete: npu_delete,
    port: npu_port,
    eval: npu_eval,
    got_error: npu_got_error,
    trace_open: npu_trace_open,
    trace_dump: npu_trace_dump,
    trace_close: npu_trace_close,
    ff_snapshot: npu_ff_snapshot,
    ff_unchanged: npu_ff_unchanged,
};

#[cfg(feature = "plain-model")]
unsafe extern "C" {
    fn npu_plain_new() -> *mut c_void;
    fn npu_plain_delete(handle: *mut c_void);
    fn npu_plain_port(handle: *mut c_void, name: *const c_char, addr: *mut *mut c_void, bytes: *mut u32) -> c_int;
    fn npu_plain_eval(handle: *mut c_void);
    fn npu_plain_got_error(handle: *mut c_void) -> c_int;
    fn npu_plain_trace_open(handle: *mut c_void, path: *const c_char, depth: c_int) -> c_int;
    fn npu_plain_trace_dump(handle: *mut c_void, time: u64);
    fn npu_plain_trace_close(handle: *mut c_void);
    fn npu_plain_ff_snapshot(handle: *mut c_void) -> c_int;
    fn npu_plain_ff_unchanged(handle: *mut c_void) -> c_int;
}

/// The plain reference build (`verilator --cc`, C++ `-O2`, no trace support): the
/// same contracts as [`SHIPPED`].
#[cfg(feature = "plain-model")]
pub static PLAIN: ModelApi = ModelApi {
    new: npu_plain_new,
    delete: npu_plain_delete,
    port: npu_plain_port,
    eval: npu_plain_eval,
    got_error: npu_plain_got_error,
    trace_open: npu_plain_trace_open,
    trace_dump: npu_plain_trace_dump,
    trace_close: npu_plain_trace_close,
    ff_snapshot: npu_plain_ff_snapshot,
    ff_unchanged: npu_plain_ff_unchanged,
};

/// Result of the bare C++ harness (`csrc/bare_harness.cpp`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NpuBareResult {
    /// Device cycles of the copy phase.
    pub cycles: u64,
    /// Wall time of the copy phase.
    pub wall_ns: u64,
    /// CPU time of the process during the copy phase.
    pub cpu_ns: u64,
    /// 1 if every copy completed.
    pub ok: i32,
}

unsafe extern "C" {
    /// Runs the H2D+D2H copy workload in the bare C++ harness.
    #[allow(clippy::too_many_arguments)]
    pub fn npu_bare_dma_run(
        bytes: u64,
        rounds: u32,
        host_rd_lat: u64,
        host_wr_lat: u64,
        host_bw: u64,
        dev_rd_lat: u64,
        dev_wr_lat: u64,
        dev_bw: u64,
    ) -> NpuBareResult;
}
