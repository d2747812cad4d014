//! Safe ownership of one Verilated NPU model: creation, port binding, evaluation, tracing.

use crate::ffi::{self, ModelApi};
use std::ffi::{CString, c_void};
use std::path::Path;

/// Which Verilated build of the same RTL a [`crate::SimDevice`] runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModelBuild {
    /// The optimised build every test and command uses (see `sim-bridge/build.rs`).
    #[default]
    Shipped,
    /// The plain reference build (`verilator --cc`, C++ `-O2`, no trace support), linked
    /// only with the `plain-model` feature: the baseline of `gmem profile cosim`.
    Plain,
}

impl ModelBuild {
    /// Short name: "shipped" or "plain".
    pub fn name(self) -> &'static str {
        match self {
            Self::Shipped => "shipped",
            Self::Plain => "plain",
        }
    }

    /// The Verilator and C++ compiler options this build was made with.
    pub fn flags(self) -> &'static str {
        match self {
            Self::Shipped => env!("GMEM_MODEL_FLAGS"),
            Self::Plain => env!("GMEM_PLAIN_MODEL_FLAGS"),
        }
    }

    /// True if this build is linked into the binary.
    pub fn is_linked(self) -> bool {
        self.api().is_some()
    }

    fn api(self) -> Option<&'static ModelApi> {
        match self {
            Self::Shipped => Some(&ffi::SHIPPED),
            #[cfg(feature = "plain-model")]
            Self::Plain => Some(&ffi::PLAIN),
            #[cfg(not(feature = "plain-model"))]
            Self::Plain => None,
        }
    }
}

/// Errors of the model layer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The Rust side expects a port the Verilated model does not have.
    #[error("the Verilated model has no port `{name}` (rtl/npu_top.sv and csrc/shim.cpp disagree)")]
    NoSuchPort {
        /// Port name.
        name: &'static str,
    },
    /// A port exists but its storage size differs from what Rust expects.
    #[error("port `{name}` is {actual} bytes in the model, expected {expected}")]
    PortSize {
        /// Port name.
        name: &'static str,
        /// Bytes the Rust side expects.
        expected: u32,
        /// Bytes in the model.
        actual: u32,
    },
    /// The requested build of the model is not linked into this binary.
    #[error("the {} model is not linked into this binary: rebuild with `--features plain-model`", build.name())]
    NotLinked {
        /// The requested build.
        build: ModelBuild,
    },
    /// The waveform file could not be opened.
    #[error("cannot write waveform file {path}: {reason}")]
    Trace {
        /// Requested path.
        path: String,
        /// Why.
        reason: &'static str,
    },
}

/// One Verilated model instance. Not `Send`: Verilator models belong to one thread.
pub struct Model {
    api: &'static ModelApi,
    handle: *mut c_void,
    tracing: bool,
}

impl Model {
    /// Creates a model of `build` with all inputs at 0.
    pub fn new(build: ModelBuild) -> Result<Self, ModelError> {
        let api = build.api().ok_or(ModelError::NotLinked { build })?;
        // SAFETY: `new` has no preconditions and never returns null.
        let handle = unsafe { (api.new)() };
        Ok(Self { api, handle, tracing: false })
    }

    /// Address of the port `name`, checked to be `bytes` long.
    pub fn port_ptr(&self, name: &'static str, bytes: u32) -> Result<*mut c_void, ModelError> {
        let cname = CString::new(name).map_err(|_| ModelError::NoSuchPort { name })?;
        let mut addr = std::ptr::null_mut();
        let mut actual = 0u32;
        // SAFETY: handle is live; cname is NUL-terminated; the out-pointers are valid locals.
        let rc = unsafe { (self.api.port)(self.handle, cname.as_ptr(), &mut addr, &mut actual) };
        if rc != 0 {
            return Err(ModelError::NoSuchPort { name });
        }
        if actual != bytes {
            return Err(ModelError::PortSize { name, expected: bytes, actual });
        }
        Ok(addr)
    }

    /// Evaluates the model once (settles combinational logic, fires clock edges).
    #[inline]
    pub fn eval(&mut self) {
        // SAFETY: handle is live and used from the owning thread only.
        unsafe { (self.api.eval)(self.handle) }
    }

    /// True once an RTL assertion has failed.
    pub fn assertion_failed(&self) -> bool {
        // SAFETY: handle is live.
        unsafe { (self.api.got_error)(self.handle) != 0 }
    }

    /// Records the whole model state for [`Model::ff_unchanged`]; false if this build
    /// has no fixed-point probe (the plain reference build).
    pub fn ff_snapshot(&mut self) -> bool {
        // SAFETY: handle is live and used from the owning thread only.
        unsafe { (self.api.ff_snapshot)(self.handle) == 0 }
    }

    /// True if, since [`Model::ff_snapshot`], nothing but the performance counters
    /// changed and each counter adds 0 or 1 per cycle: with the same inputs the design
    /// stays at this fixed point.
    pub fn ff_unchanged(&self) -> bool {
        // SAFETY: handle is live.
        unsafe { (self.api.ff_unchanged)(self.handle) == 1 }
    }

    /// Starts writing an FST waveform to `path`: `depth` levels of hierarchy from
    /// `npu_top` (0: all), times in picoseconds.
    pub fn trace_open(&mut self, path: &Path, depth: u32) -> Result<(), ModelError> {
        let shown = path.display().to_string();
        let c = CString::new(shown.clone())
            .map_err(|_| ModelError::Trace { path: shown.clone(), reason: "path contains NUL" })?;
        let depth = std::ffi::c_int::try_from(depth).unwrap_or(0);
        // SAFETY: handle is live; c is NUL-terminated and outlives the call.
        match unsafe { (self.api.trace_open)(self.handle, c.as_ptr(), depth) } {
            0 => {
                self.tracing = true;
                Ok(())
            }
            -1 => Err(ModelError::Trace { path: shown, reason: "a waveform is already being written" }),
            -3 => Err(ModelError::Trace { path: shown, reason: "this build of the model has no trace support" }),
            _ => Err(ModelError::Trace { path: shown, reason: "the file cannot be created" }),
        }
    }

    /// Records the current signal values at `time` (picoseconds) if a trace is open.
    #[inline]
    pub fn trace_dump(&mut self, time: u64) {
        if self.tracing {
            // SAFETY: handle is live.
            unsafe { (self.api.trace_dump)(self.handle, time) }
        }
    }

    /// Flushes and closes the waveform, if any.
    pub fn trace_close(&mut self) {
        if self.tracing {
            // SAFETY: handle is live.
            unsafe { (self.api.trace_close)(self.handle) }
            self.tracing = false;
        }
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: handle came from this build's `new` and is freed exactly once, here.
        unsafe { (self.api.delete)(self.handle) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing
    use super::*;
    use std::time::Duration;

    fn set(m: &Model, port: &'static str, v: u8) {
        let p = m.port_ptr(port, 1).unwrap().cast::<u8>();
        // SAFETY: a live one-byte port of `m`, written from the thread that runs it.
        unsafe { p.write(v) }
    }

    fn cycle(m: &mut Model) {
        set(m, "clk_i", 0);
        m.eval();
        set(m, "clk_i", 1);
        m.eval();
    }

    /// Verilator reports an assertion to the thread's current context, and a model's
    /// destructor unregisters its scopes there: two models in one thread must each
    /// get their own, whatever order they were made and dropped in.
    #[test]
    fn two_models_in_one_thread_keep_their_own_assertions_and_drop_in_creation_order() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut a = Model::new(ModelBuild::Shipped).unwrap();
            let mut b = Model::new(ModelBuild::Shipped).unwrap();
            for m in [&mut a, &mut b] {
                set(m, "rst_ni", 0);
                for _ in 0..4 {
                    cycle(m);
                }
                set(m, "rst_ni", 1);
                cycle(m);
            }
            // A write response nobody asked for: the RTL's assertions catch it.
            set(&a, "m_axi_host_bvalid_i", 1);
            for _ in 0..4 {
                cycle(&mut a);
                cycle(&mut b);
            }
            let flagged = (a.assertion_failed(), b.assertion_failed());
            drop(a);
            drop(b);
            tx.send(flagged).unwrap();
        });
        let flagged = rx.recv_timeout(Duration::from_secs(120)).expect("the two models were dropped within 2 min");
        assert_eq!(flagged, (true, false), "(first model, second model) flagged an assertion");
    }
}
