//! What produced an output. Every `--json` object of `gmem` carries these fields at its
//! top level (docs/cli.md): the tool's version and commit, the command, the backend,
//! the clock its times are counted in, and the system model (null off the RTL).

use crate::info::Backend;
use crate::system::System;
use serde::Serialize;

/// `gmem --version`: the crate version and the git commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("GMEM_COMMIT"), ")");

/// The clock a backend's device times are counted in.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClockDomain {
    /// Cycles of the Verilated RTL at the nominal clock under the system model: a
    /// prediction of a board.
    #[default]
    Simulated,
    /// The reference model's virtual time: untimed, not a prediction.
    Virtual,
    /// Wall-clock time of a real device.
    Wall,
}

impl ClockDomain {
    /// The domain of `backend`.
    pub fn of(backend: &Backend) -> Self {
        match backend {
            Backend::Rtl => ClockDomain::Simulated,
            Backend::Model => ClockDomain::Virtual,
            Backend::Vfio(_) => ClockDomain::Wall,
        }
    }

    /// One phrase for text reports.
    pub fn describe(self) -> String {
        let mhz = sim_bridge::NOMINAL_HZ / 1_000_000;
        match self {
            ClockDomain::Simulated => format!("simulated RTL cycles at {mhz} MHz"),
            ClockDomain::Virtual => "virtual time of the untimed reference model (not a prediction)".into(),
            ClockDomain::Wall => "wall clock of the device".into(),
        }
    }
}

/// The provenance fields of a JSON output.
#[derive(Clone, Debug, Serialize)]
pub struct Provenance {
    /// [`VERSION`].
    pub gmem_version: &'static str,
    /// The subcommand (`run`, `pte dump`, …).
    pub command: &'static str,
    /// `rtl`, `model` or `vfio:<PCI address>`.
    pub backend: String,
    /// What device times are counted in.
    pub clock_domain: ClockDomain,
    /// Nominal device clock, Hz (null for a board's wall clock).
    pub clock_hz: Option<u64>,
    /// The system model ([`System::to_json`]); null when the backend has none.
    pub model: Option<serde_json::Value>,
}

impl Provenance {
    /// The provenance of `command` on `backend` under `sys` (used only on the RTL).
    pub fn new(command: &'static str, backend: &Backend, sys: Option<&System>) -> Self {
        let domain = ClockDomain::of(backend);
        Provenance {
            gmem_version: VERSION,
            command,
            backend: backend.to_string(),
            clock_domain: domain,
            clock_hz: (domain != ClockDomain::Wall).then_some(sim_bridge::NOMINAL_HZ),
            model: sys.filter(|_| *backend == Backend::Rtl).map(|s| s.to_json()),
        }
    }

    /// `body` (a JSON object) with these fields added at its top level.
    pub fn stamp(&self, body: impl Serialize) -> serde_json::Value {
        let mut v = serde_json::to_value(body).unwrap_or_default();
        if let (Some(obj), Ok(serde_json::Value::Object(p))) = (v.as_object_mut(), serde_json::to_value(self)) {
            obj.extend(p);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_objects_keep_their_fields_and_gain_the_provenance() {
        let p = Provenance::new("run", &Backend::Model, None);
        let v = p.stamp(serde_json::json!({ "seed": 7 }));
        assert_eq!(v["seed"], 7);
        assert_eq!(v["backend"], "model");
        assert_eq!(v["clock_domain"], "virtual");
        assert!(v["model"].is_null());
        assert!(v["gmem_version"].as_str().unwrap_or("").starts_with("0.0.0 (commit "));
    }
}
