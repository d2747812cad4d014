//! Cross-crate scenarios: the manager, the NPU driver and a transport working together.
//!
//! Every scenario here runs the whole stack — `gmem-host` on top of the `npu` driver on
//! top of a transport — and checks results byte for byte. The scenarios live in this
//! crate's `tests/` folder; the library itself only holds shared helpers.
