//! The raw `extern "C"` surface of `csrc/shim.cpp`. Only `model.rs` uses it.

use std::ffi::{c_char, c_int, c_void};

unsafe extern "C" {
    /// Creates a model (and its Verilator context); never returns null.
    pub fn npu_new() -> *mut c_void;
    /// Closes any trace, runs `final` and frees the model.
    pub fn npu_delete(handle: *mut c_void);
    /// Looks up a port by name; 0 on success with its address and size in bytes.
    pub fn npu_port(handle: *mut c_void, name: *const c_char, addr: *mut *mut c_void, bytes: *mut u32) -> c_int;
    /// Evaluates the model once.
    pub fn npu_eval(handle: *mut c_void);
    /// Non-zero once an RTL assertion failed.
    pub fn npu_got_error(handle: *mut c_void) -> c_int;
    /// Opens an FST trace of `depth` hierarchy levels from `npu_top` (0: all): 0 ok,
    /// -1 already open, -2 cannot write the file.
    pub fn npu_trace_open(handle: *mut c_void, path: *const c_char, depth: c_int) -> c_int;
    /// Dumps the current signal values at `time` (picoseconds).
    pub fn npu_trace_dump(handle: *mut c_void, time: u64);
    /// Flushes and closes the trace.
    pub fn npu_trace_close(handle: *mut c_void);
}

/// Result of the bare C++ harness (`csrc/bare_harness.cpp`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NpuBareResult {
    /// Device cycles of the copy phase.
    pub cycles: u64,
    /// Wall time of the copy phase.
    pub wall_ns: u64,
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
