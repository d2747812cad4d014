//! Fast-forward changes nothing a soak reports: the same seed with `GMEM_FAST_FORWARD=0`
//! and with fast-forward on (the default) gives the same report, cycles included.

use std::process::Command;

fn soak(fast_forward: &str) -> serde_json::Value {
    let args = ["soak", "--ops", "2000", "--seed", "1", "--inject", "2000", "--json"];
    let out = Command::new(env!("CARGO_BIN_EXE_gmem"))
        .args(args)
        .env("GMEM_FAST_FORWARD", fast_forward)
        .output()
        .expect("gmem runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}{text}", String::from_utf8_lossy(&out.stderr));
    let mut v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON object");
    v.as_object_mut().expect("an object").remove("wall_s");
    v
}

#[test]
fn a_soak_reports_the_same_with_and_without_fast_forward() {
    let (off, on) = (soak("0"), soak("1"));
    assert_eq!(off, on);
    assert_eq!(on["verdict"].as_str(), Some("PASS"), "{on}");
}
