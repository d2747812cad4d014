//! The system model a co-simulated run is measured under, from the command line:
//! `--link`, `--dev-mem-model`, `--host-time` and `--host-cost`. Every report prints it whole
//! ([`System::describe`]) and every JSON line carries it ([`System::to_json`]).

use npu::{HostCosts, HostTime, NpuConfig};
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
    /// One cost of the host-time model, NAME=NS (repeatable): batch, per_fault,
    /// migration, part, page_in, page_out, cpu_fault, hint, hint_page or launch, in nanoseconds up to
    /// 1 s; for a host measured with `gmem profile host` (docs/performance-model.md).
    #[arg(long = "host-cost", value_name = "NAME=NS", value_parser = parse_host_cost)]
    pub host_cost: Vec<(String, u64)>,
    /// The host-time costs `gmem profile host --json` wrote to FILE (its lines in ns);
    /// a `--host-cost` given as well wins over the file.
    #[arg(long = "host-costs", value_name = "FILE")]
    pub host_costs: Option<std::path::PathBuf>,
    /// Least time between two CSR writes leaving the host, in ns: a register BAR is
    /// mapped uncached and its stores go out one at a time (default: 150 on the PCIe
    /// presets, 0 on ideal and short).
    #[arg(long = "mmio-write-gap", value_name = "NS", value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub mmio_write_gap: Option<u64>,
    /// The driver pushes small DMA and command submissions through BAR0 (DMA_PUSH,
    /// CMDQ_PUSH) instead of letting the device fetch them: pays when stores are cheap
    /// (`--mmio-write-gap` of 100 ns or less on gen3x16), costs more at 150.
    #[arg(long)]
    pub push: bool,
}

/// The costs in `path`, a `gmem profile host --json` output: every line whose `unit`
/// is `ns`, by its `name`, over `costs`. Errors name the file and line.
fn costs_from_file(path: &std::path::Path, costs: &mut HostCosts) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--host-costs {}: {e}", path.display()))?;
    let mut found = 0;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("--host-costs {} line {}", path.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{}: not JSON ({e})", at()))?;
        if v["unit"] != "ns" {
            continue;
        }
        let (Some(name), Some(ns)) = (v["name"].as_str(), v["value"].as_u64()) else {
            return Err(format!("{}: a cost needs a name and a whole number of ns", at()));
        };
        costs.set(name, ns).map_err(|e| format!("{}: {e}", at()))?;
        found += 1;
    }
    if found == 0 {
        return Err(format!(
            "--host-costs {}: no host cost in it (write it with `gmem profile host --json > FILE`)",
            path.display()
        ));
    }
    Ok(())
}

/// `NAME=NS`, checked against the model's names and limit.
fn parse_host_cost(s: &str) -> Result<(String, u64), String> {
    let (name, ns) = s.split_once('=').ok_or_else(|| format!("{s:?} is not NAME=NS"))?;
    let ns: u64 = ns.parse().map_err(|_| format!("{ns:?} is not a whole number of nanoseconds"))?;
    HostCosts::default().set(name, ns).map_err(|e| e.to_string())?;
    Ok((name.to_string(), ns))
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
    /// The driver pushes small submissions through BAR0 ([`NpuConfig::push`]).
    pub push: bool,
}

impl SystemArgs {
    /// Resolves the defaults; `--host-cost` with `--host-time measured` is an error.
    pub fn system(&self) -> Result<System, String> {
        let ideal_link = matches!(self.link, LinkPreset::Ideal | LinkPreset::Short);
        let mem = self.dev_mem_model.unwrap_or(if ideal_link { DevMemPreset::Ideal } else { DevMemPreset::Ddr4 });
        let host_time = match self.host_time {
            HostTimeArg::Model => {
                let mut costs = HostCosts::default();
                if let Some(path) = &self.host_costs {
                    costs_from_file(path, &mut costs)?;
                }
                for (name, ns) in &self.host_cost {
                    costs.set(name, *ns).map_err(|e| e.to_string())?;
                }
                HostTime::Model(costs)
            }
            HostTimeArg::Measured if !self.host_cost.is_empty() || self.host_costs.is_some() => {
                return Err(
                    "--host-cost and --host-costs set the modelled host time: they need --host-time model".into()
                );
            }
            HostTimeArg::Measured => HostTime::Measured,
        };
        let mut timing = TimingModel::new(self.link, mem);
        if let Some(gap) = self.mmio_write_gap {
            timing.mmio.write_gap_ns = gap;
        }
        Ok(System { timing, host_time, push: self.push })
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
        NpuConfig { host_time: self.host_time, push: self.push, ..cfg }
    }

    /// One line naming every parameter.
    pub fn describe(&self) -> String {
        let push = if self.push { "on" } else { "off" };
        format!("{} {} push={push}", self.timing.describe(), self.host_time.describe())
    }

    /// The `model` object of JSON reports.
    pub fn to_json(self) -> serde_json::Value {
        let mut v = self.timing.to_json();
        v["host_time"] = self.host_time.to_json();
        v["push"] = self.push.into();
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
        let s = Cli::parse_from(["x"]).sys.system().unwrap();
        assert_eq!(s.timing, TimingModel::board());
        assert!(matches!(s.host_time, HostTime::Model(_)));
        let i = Cli::parse_from(["x", "--link", "ideal"]).sys.system().unwrap();
        assert_eq!(i.timing, TimingModel::default());
        let j = Cli::parse_from(["x", "--link", "ideal", "--dev-mem-model", "hbm"]).sys.system().unwrap().to_json();
        assert_eq!(j["dev_mem"]["params"]["name"], "hbm");
        assert_eq!(j["host_time"]["mode"], "model");
        let m = Cli::parse_from(["x", "--host-time", "measured"]).sys.system().unwrap();
        assert!(m.sim_config().measure_host_time);
        assert!(m.describe().contains("not deterministic"));
        assert!(Cli::try_parse_from(["x", "--link", "gen9"]).is_err());
    }

    #[test]
    fn the_write_gap_and_the_push_are_set_from_the_command_line_and_reported() {
        let s = Cli::parse_from(["x"]).sys.system().unwrap();
        assert_eq!((s.timing.mmio.write_gap_ns, s.push), (150, false), "a board's uncached stores; no push");
        assert!(s.describe().contains("gap=150ns") && s.describe().ends_with("push=off"));
        assert!(!s.npu(NpuConfig::default()).push);
        let p = Cli::parse_from(["x", "--push", "--mmio-write-gap", "60"]).sys.system().unwrap();
        assert_eq!((p.timing.mmio.write_gap_ns, p.push), (60, true));
        assert!(p.npu(NpuConfig::default()).push);
        assert_eq!(
            (p.to_json()["push"].as_bool(), p.to_json()["mmio"]["write_gap_ns"].as_u64()),
            (Some(true), Some(60))
        );
        let i = Cli::parse_from(["x", "--link", "ideal"]).sys.system().unwrap();
        assert_eq!(i.timing.mmio.write_gap_ns, 0, "ideal links have free MMIO");
        assert!(Cli::try_parse_from(["x", "--mmio-write-gap", "1000001"]).is_err());
        assert!(Cli::try_parse_from(["x", "--mmio-write-gap", "-1"]).is_err());
    }

    #[test]
    fn host_costs_can_be_set_one_by_one_and_bad_ones_are_refused() {
        let s = Cli::parse_from(["x", "--host-cost", "page_in=300", "--host-cost", "cpu_fault=5000"]).sys;
        let HostTime::Model(c) = s.system().unwrap().host_time else { panic!("modelled host time") };
        assert_eq!((c.page_in_ns, c.cpu_fault_ns), (300, 5_000));
        assert_eq!(c.page_out_ns, HostCosts::default().page_out_ns, "the others keep their defaults");
        assert!(s.system().unwrap().describe().contains("+300ns/page-in"));
        for bad in ["page_in", "page=300", "page_in=-1", "page_in=3us", "page_in=1000000001"] {
            assert!(Cli::try_parse_from(["x", "--host-cost", bad]).is_err(), "{bad} is refused");
        }
        let measured = Cli::parse_from(["x", "--host-time", "measured", "--host-cost", "hint=1"]).sys;
        assert!(measured.system().unwrap_err().contains("--host-time model"));
    }

    #[test]
    fn host_costs_come_from_a_profile_host_file_and_single_costs_win() {
        let dir = std::env::temp_dir().join(format!("gmem-host-costs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.to_str().unwrap().to_string()
        };
        let good = file(
            "good.jsonl",
            concat!(
                r#"{"name":"page_in","value":300,"unit":"ns","default":430}"#,
                "\n",
                r#"{"name":"check","what":"x","measured_us":1.0,"model_us":1.0}"#,
                "\n",
                r#"{"name":"launch","value":55,"unit":"ns"}"#,
                "\n",
                r#"{"name":"flags","value":"--host-cost page_in=300"}"#,
                "\n"
            ),
        );
        let sys = |args: &[&str]| Cli::parse_from(["x"].iter().chain(args)).sys.system();
        let HostTime::Model(c) = sys(&["--host-costs", &good]).unwrap().host_time else { panic!("model") };
        assert_eq!((c.page_in_ns, c.launch_ns, c.hint_ns), (300, 55, HostCosts::default().hint_ns));
        let HostTime::Model(c) = sys(&["--host-costs", &good, "--host-cost", "page_in=7"]).unwrap().host_time else {
            panic!("model")
        };
        assert_eq!(c.page_in_ns, 7, "a single --host-cost wins over the file");
        let errors = [
            (dir.join("missing").to_str().unwrap().to_string(), "missing"),
            (file("none.jsonl", "{\"name\":\"check\"}\n"), "no host cost"),
            (file("bad.jsonl", "{\"name\":\"page_in\",\"unit\":\"ns\",\"value\":1}\nnot json\n"), "line 2"),
            (file("unknown.jsonl", "{\"name\":\"page\",\"unit\":\"ns\",\"value\":1}\n"), "line 1"),
            (file("neg.jsonl", "{\"name\":\"hint\",\"unit\":\"ns\",\"value\":-1}\n"), "whole number"),
        ];
        for (path, want) in errors {
            let e = sys(&["--host-costs", &path]).unwrap_err();
            assert!(e.contains("--host-costs") && e.contains(want), "{path}: {e}");
        }
        let e = sys(&["--host-time", "measured", "--host-costs", &good]).unwrap_err();
        assert!(e.contains("--host-time model"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
