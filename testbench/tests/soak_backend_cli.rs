//! `gmem soak --backend`: the stack under test on another transport than the
//! in-process RTL with its backdoor. The board's check (device pages read back by DMA)
//! runs in-process on the RTL; VFIO-only refusals and a missing device end with a clear
//! error and the documented exit code before any output.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

mod common;
use common::gmem_code;

fn soak_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["soak", "--json"];
    all.extend_from_slice(args);
    let (code, out, err) = gmem_code(&all);
    assert_eq!(code, Some(0), "{all:?}: {err}{out}");
    serde_json::from_str(out.trim()).expect("one JSON object")
}

/// The non-backdoor path in-process: the RTL checked by DMA read-back, with injection
/// on every site family, passes; the model beside it sees exactly the run it sees
/// beside the backdoor-checked RTL (its stack does not depend on the other's check).
#[test]
fn soak_with_the_dma_check_passes_on_the_rtl_and_the_model() {
    let args = ["--ops", "60", "--seed", "5", "--inject", "5000", "--rule", "io:read32=rate:2000"];
    let dma = soak_json(&[&args[..], &["--device-check", "dma"]].concat());
    let backdoor = soak_json(&args);
    for v in [&dma, &backdoor] {
        assert_eq!(v["verdict"], "PASS", "{v}");
        assert_eq!((v["data_mismatches"].as_u64(), v["hangs"].as_u64()), (Some(0), Some(0)), "{v}");
        assert_eq!(v["backend"], "rtl+model", "{v}");
        assert!(v["injected_rtl"].as_u64().unwrap() > 0, "{v}");
        assert!(v.get("device_wall_s").is_none(), "a simulated clock has cycles: {v}");
    }
    assert_eq!((dma["device_check"].as_str(), backdoor["device_check"].as_str()), (Some("dma"), Some("backdoor")));
    assert_eq!(dma["injected_model"], backdoor["injected_model"], "the model's run is the same: {dma} {backdoor}");
    let model = soak_json(&["--ops", "30", "--backend", "model", "--device-check", "dma", "--inject", "5000"]);
    assert_eq!((model["verdict"].as_str(), model["backend"].as_str()), (Some("PASS"), Some("model+model")), "{model}");
    // The text report names the check when it is not the default one.
    let (code, out, err) = gmem_code(&["soak", "--ops", "4", "--device-check", "dma"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("soak: seed 1, inject 0 ppm, rtl and reference model side by side; device pages read back by device-to-host DMA\n"), "{out}");
}

#[test]
fn soak_options_the_stack_under_test_cannot_take_are_usage_errors() {
    for (args, want) in [
        (
            &["soak", "--backend", "vfio:0000:01:00.0", "--device-check", "backdoor"][..],
            "--device-check backdoor needs an in-process device (rtl or model); vfio:0000:01:00.0 has no backdoor into device memory: use --device-check dma",
        ),
        (
            &["soak", "--backend", "vfio:0000:01:00.0", "--link", "nominal"][..],
            "--link sets the port timing of the in-process RTL; vfio:0000:01:00.0 has its own",
        ),
        (
            &["soak", "--backend", "model", "--link", "short"][..],
            "--link sets the port timing of the in-process RTL; model",
        ),
        (&["soak", "--backend", "vfio:nonsense"][..], "malformed PCI address in `vfio:nonsense`"),
    ] {
        let (code, out, err) = gmem_code(args);
        assert_eq!(code, Some(2), "{args:?}: usage errors exit 2: {err}");
        assert!(out.is_empty(), "nothing printed before the check: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// A well-formed address with no device behind it: an error (exit 1) naming the
/// address, before any report line.
#[test]
fn soak_on_a_vfio_device_that_is_not_there_fails_with_the_address() {
    let (code, out, err) = gmem_code(&["soak", "--ops", "1", "--backend", "vfio:0000:ff:1f.7"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.starts_with("gmem: error: ") && err.lines().count() == 1, "{err}");
    assert!(err.contains("0000:ff:1f.7") || err.contains("modprobe vfio-pci"), "names the device or the fix: {err}");
}
