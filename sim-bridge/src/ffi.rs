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
    /// Opens an FST trace: 0 ok, -1 already open, -2 cannot write the file.
    pub fn npu_trace_open(handle: *mut c_void, path: *const c_char) -> c_int;
    /// Dumps the current signal values at `time`.
    pub fn npu_trace_dump(handle: *mut c_void, time: u64);
    /// Flushes and closes the trace.
    pub fn npu_trace_close(handle: *mut c_void);
}
