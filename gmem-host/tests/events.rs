//! The structured event stream: every kind of action shows up as a `tracing` event
//! under the `gmem` target, and the counters agree.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use gmem_host::{Access, DeviceFault, Hint, MapFlags, Node};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        if e.metadata().target() == "gmem" {
            let mut m = Message(String::new());
            e.record(&mut m);
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(m.0);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn every_action_emits_an_event() {
    let sub = Collect::default();
    let seen = sub.0.clone();
    tracing::subscriber::with_default(sub, || {
        let r = rig(1024);
        let p = r.gm.mmap(r.space, 8 << 20, MapFlags::PEER_SHARED).expect("mmap");
        let va = p as u64;
        // A dense batch: fault batch, prefetch, migration to the device.
        let f: Vec<DeviceFault> = (0..300)
            .map(|pg| DeviceFault { asid: r.asid, va: va + pg * 4096, access: Access::Write, tag: pg })
            .collect();
        assert!(r.gm.dev_fault(r.id, &f).iter().all(|x| x.is_retry()));
        // Pressure: eviction.
        let g: Vec<DeviceFault> = (512..1300)
            .map(|pg| DeviceFault { asid: r.asid, va: va + pg * 4096, access: Access::Write, tag: pg })
            .collect();
        assert!(r.gm.dev_fault(r.id, &g).iter().all(|x| x.is_retry()));
        // A hint: migration to the host with a coalesced invalidation.
        r.gm.hmadvise(r.space, Node::Cpu, va, 8 << 20, Hint::DontNeed).expect("dontneed");
    });
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for want in [
        "device registered",
        "fault batch",
        "prefetch",
        "migrate to device",
        "eviction",
        "migrate to host",
        "tlb invalidation",
    ] {
        assert!(seen.iter().any(|m| m == want), "no `{want}` event in {seen:?}");
    }
}
