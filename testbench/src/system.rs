//! The system model a co-simulated run is measured under, from the command line:
//! `--link`, `--dev-mem-model` and `--host-time`. Every report prints it whole
//! ([`System::describe`]) and every JSON line carries it ([`System::to_json`]).

use npu::{HostTime, NpuConfig};
use sim_bridge::{DevMemPreset, LinkPreset, SimConfig, TimingModel};

/// `--host-time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HostTimeArg {
    /// Deterministic modelled costs per fault batch, fault, CPU fault, hint and launch.
    Model,
    /// The host's real wall time between device operations (not deterministic).
    Measured,
}

/// The model options shared by `demo`, `run`, `pte dump`, `info` and `profile`.
#[derive(Clone, Debug, clap::Args)]
pub struct SystemArgs {
    /// Host link: gen3x16 (board-like default), gen4x16, gen5x16, ideal (RTL-only
    /// studies: 1 µs latency, 16 GB/s, free MMIO and interrupts) or short (the soak's).
    #[arg(long, default_value = "gen3x16", value_parser = parse_link)]
    pub link: LinkPreset,
    /// Device memory: ddr4, hbm or ideal (default: ddr4; ideal with --link ideal|short).
    #[arg(long = "dev-mem-model", value_parser = parse_mem)]
    pub dev_mem_model: Option<DevMemPreset>,
    /// Host software time in device time: model (deterministic) or measured.
    #[arg(long, value_enum, default_value = "model")]
    pub host_time: HostTimeArg,
}

fn parse_link(s: &str) -> Result<LinkPreset, String> {
    s.parse()
}

fn parse_mem(s: &str) -> Result<DevMemPreset, String> {
    s.parse()
}

/// The resolved model.
#[derive(Clone, Copy, Debug)]
pub struct System {
    /// Link, device memory, MMIO and interrupts.
    pub timing: TimingModel,
    /// Host software time.
    pub host_time: HostTime,
}

impl SystemArgs {
    /// Resolves the defaults.
    pub fn system(&self) -> System {
        let ideal_link = matches!(self.link, LinkPreset::Ideal | LinkPreset::Short);
        let mem = self.dev_mem_model.unwrap_or(if ideal_link { DevMemPreset::Ideal } else { DevMemPreset::Ddr4 });
        let host_time = match self.host_time {
            HostTimeArg::Model => HostTime::default(),
            HostTimeArg::Measured => HostTime::Measured,
        };
        System { timing: TimingModel::new(self.link, mem), host_time }
    }
}

impl System {
    /// The co-simulation's configuration under this model.
    pub fn sim_config(&self) -> SimConfig {
        SimConfig {
            timing: self.timing,
            measure_host_time: self.host_time == HostTime::Measured,
            ..SimConfig::default()
        }
    }

    /// `cfg` with this model's host time.
    pub fn npu(&self, cfg: NpuConfig) -> NpuConfig {
        NpuConfig { host_time: self.host_time, ..cfg }
    }

    /// One line naming every parameter.
    pub fn describe(&self) -> String {
        format!("{} {}", self.timing.describe(), self.host_time.describe())
    }

    /// The `model` object of JSON reports.
    pub fn to_json(self) -> serde_json::Value {
        let mut v = self.timing.to_json();
        v["host_time"] = self.host_time.to_json();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sys: SystemArgs,
    }

    #[test]
    fn defaults_are_board_like_and_ideal_links_get_ideal_memory() {
        let s = Cli::parse_from(["x"]).sys.system();
        assert_eq!(s.timing, TimingModel::board());
        assert!(matches!(s.host_time, HostTime::Model(_)));
        let i = Cli::parse_from(["x", "--link", "ideal"]).sys.system();
        assert_eq!(i.timing, TimingModel::default());
        let j = Cli::parse_from(["x", "--link", "ideal", "--dev-mem-model", "hbm"]).sys.system().to_json();
        assert_eq!(j["dev_mem"]["params"]["name"], "hbm");
        assert_eq!(j["host_time"]["mode"], "model");
        let m = Cli::parse_from(["x", "--host-time", "measured"]).sys.system();
        assert!(m.sim_config().measure_host_time);
        assert!(m.describe().contains("not deterministic"));
        assert!(Cli::try_parse_from(["x", "--link", "gen9"]).is_err());
    }
}
