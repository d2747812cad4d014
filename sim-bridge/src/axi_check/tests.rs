//! Deliberately wrong beat sequences: each rule of the checker must fire, with the
//! cycle, port, channel and field of the offending beat; correct sequences pass.

use super::*;

fn ar(id: u8, addr: u64, len: u8) -> Chan<AddrBeat> {
    Chan { valid: true, ready: true, beat: AddrBeat { id, addr, len, size: 6, burst: 1 } }
}

fn r(id: u8, last: bool) -> Chan<RBeat> {
    Chan { valid: true, ready: true, beat: RBeat { id, last, ..RBeat::default() } }
}

fn w(last: bool, word: u32) -> Chan<WBeat> {
    let mut data = [0; 16];
    data[3] = word;
    Chan { valid: true, ready: true, beat: WBeat { data, strb: u64::MAX, last } }
}

fn b(id: u8) -> Chan<BBeat> {
    Chan { valid: true, ready: true, beat: BBeat { id, resp: 0 } }
}

fn stalled<T>(c: Chan<T>) -> Chan<T> {
    Chan { ready: false, ..c }
}

/// Feeds one `Signals` per cycle from 0; returns the first violation.
fn run(cycles: &[Signals]) -> Result<(), AxiViolation> {
    let mut c = AxiChecker::new(PortName::Host, MAX_READ_BURSTS, 64);
    for (cycle, s) in cycles.iter().enumerate() {
        c.observe(cycle as u64, s)?;
    }
    Ok(())
}

fn violation(cycle: u64, channel: Channel, field: &'static str, rule: Rule) -> Result<(), AxiViolation> {
    Err(AxiViolation { cycle, port: PortName::Host, channel, field, rule })
}

fn with_ar(a: Chan<AddrBeat>) -> Signals {
    Signals { ar: a, ..Signals::default() }
}

fn with_aw(a: Chan<AddrBeat>) -> Signals {
    Signals { aw: a, ..Signals::default() }
}

fn with_w(x: Chan<WBeat>) -> Signals {
    Signals { w: x, ..Signals::default() }
}

fn with_r(x: Chan<RBeat>) -> Signals {
    Signals { r: x, ..Signals::default() }
}

fn with_b(x: Chan<BBeat>) -> Signals {
    Signals { b: x, ..Signals::default() }
}

#[test]
fn correct_read_and_write_with_stalls_pass() {
    let seq = [
        with_ar(stalled(ar(1, 0x1000, 2))),
        with_ar(ar(1, 0x1000, 2)),
        with_r(r(1, false)),
        with_r(stalled(r(1, false))),
        with_r(r(1, false)),
        with_r(r(1, true)),
        with_aw(ar(2, 0x2040, 1)),
        with_w(stalled(w(false, 5))),
        with_w(w(false, 5)),
        with_w(w(true, 6)),
        with_b(stalled(b(2))),
        with_b(b(2)),
    ];
    assert_eq!(run(&seq), Ok(()));
}

#[test]
fn valid_dropped_before_ready_fires_on_every_channel() {
    let idle = Signals::default();
    assert_eq!(run(&[with_aw(stalled(ar(0, 0, 0))), idle]), violation(1, Channel::Aw, "awvalid", Rule::ValidDropped));
    assert_eq!(run(&[with_ar(stalled(ar(0, 0, 0))), idle]), violation(1, Channel::Ar, "arvalid", Rule::ValidDropped));
    assert_eq!(run(&[with_w(stalled(w(false, 0))), idle]), violation(1, Channel::W, "wvalid", Rule::ValidDropped));
    let read = with_ar(ar(3, 0, 0));
    assert_eq!(run(&[read, with_r(stalled(r(3, true))), idle]), violation(2, Channel::R, "rvalid", Rule::ValidDropped));
    let write = [with_aw(ar(4, 0, 0)), with_w(w(true, 0)), with_b(stalled(b(4))), idle];
    assert_eq!(run(&write), violation(3, Channel::B, "bvalid", Rule::ValidDropped));
}

#[test]
fn payload_change_while_stalled_names_the_field() {
    let moved = Chan { beat: AddrBeat { addr: 0x40, ..ar(0, 0, 0).beat }, ..ar(0, 0, 0) };
    assert_eq!(
        run(&[with_ar(stalled(ar(0, 0, 0))), with_ar(moved)]),
        violation(1, Channel::Ar, "araddr", Rule::PayloadChanged { before: 0, after: 0x40 })
    );
    let longer = ar(0, 0, 1);
    assert_eq!(
        run(&[with_aw(stalled(ar(0, 0, 0))), with_aw(longer)]),
        violation(1, Channel::Aw, "awlen", Rule::PayloadChanged { before: 0, after: 1 })
    );
    let mut strb = w(false, 7);
    strb.beat.strb = 0xFF;
    assert_eq!(
        run(&[with_w(stalled(w(false, 7))), with_w(strb)]),
        violation(1, Channel::W, "wstrb", Rule::PayloadChanged { before: u64::MAX, after: 0xFF })
    );
    // Word 3 is the high half of 64-bit lane 1.
    assert_eq!(
        run(&[with_w(stalled(w(false, 7))), with_w(w(false, 8))]),
        violation(1, Channel::W, "wdata", Rule::PayloadChanged { before: 7 << 32, after: 8 << 32 })
    );
    let read = with_ar(ar(2, 0, 1));
    assert_eq!(
        run(&[read, with_r(stalled(r(2, false))), with_r(r(2, true))]),
        violation(2, Channel::R, "rlast", Rule::PayloadChanged { before: 0, after: 1 })
    );
}

#[test]
fn wlast_must_be_on_exactly_the_awlen_plus_one_th_beat() {
    let early = [with_aw(ar(0, 0, 3)), with_w(w(false, 0)), with_w(w(true, 0))];
    assert_eq!(run(&early), violation(2, Channel::W, "wlast", Rule::LastMismatch { beat: 2, beats: 4, last: true }));
    let missing = [with_aw(ar(0, 0, 0)), with_w(w(false, 0))];
    assert_eq!(run(&missing), violation(1, Channel::W, "wlast", Rule::LastMismatch { beat: 1, beats: 1, last: false }));
}

#[test]
fn write_data_may_precede_its_address_but_must_match_its_length() {
    let ok = [with_w(w(false, 0)), with_w(w(true, 0)), with_aw(ar(5, 0, 1)), with_b(b(5))];
    assert_eq!(run(&ok), Ok(()));
    let short = [with_w(w(true, 0)), with_aw(ar(5, 0, 1))];
    assert_eq!(run(&short), violation(1, Channel::Aw, "wlast", Rule::LastMismatch { beat: 1, beats: 2, last: true }));
}

#[test]
fn rlast_must_close_the_burst_of_its_id() {
    let seq = [with_ar(ar(1, 0, 1)), with_r(r(1, true))];
    assert_eq!(run(&seq), violation(1, Channel::R, "rlast", Rule::LastMismatch { beat: 1, beats: 2, last: true }));
    let seq = [with_ar(ar(1, 0, 0)), with_r(r(1, false))];
    assert_eq!(run(&seq), violation(1, Channel::R, "rlast", Rule::LastMismatch { beat: 1, beats: 1, last: false }));
}

#[test]
fn bursts_crossing_4k_or_not_incr_full_beats_are_rejected() {
    assert_eq!(
        run(&[with_ar(ar(0, 0xFC0, 1))]),
        violation(0, Channel::Ar, "araddr", Rule::Crosses4k { addr: 0xFC0, bytes: 128 })
    );
    assert_eq!(
        run(&[with_aw(ar(0, 0x1_0000_0F80, 2))]),
        violation(0, Channel::Aw, "awaddr", Rule::Crosses4k { addr: 0x1_0000_0F80, bytes: 192 })
    );
    // The last beat ending exactly at the boundary is fine.
    assert_eq!(run(&[with_ar(ar(0, 0xF80, 1))]), Ok(()));
    let mut narrow = ar(0, 0, 0);
    narrow.beat.size = 5;
    assert_eq!(run(&[with_ar(narrow)]), violation(0, Channel::Ar, "arsize", Rule::Unsupported { value: 5 }));
    let mut wrap = ar(0, 0, 0);
    wrap.beat.burst = 2;
    assert_eq!(run(&[with_aw(wrap)]), violation(0, Channel::Aw, "awburst", Rule::Unsupported { value: 2 }));
}

#[test]
fn responses_only_for_outstanding_ids() {
    assert_eq!(run(&[with_r(r(4, true))]), violation(0, Channel::R, "rid", Rule::NotOutstanding { id: 4 }));
    assert_eq!(run(&[with_b(b(9))]), violation(0, Channel::B, "bid", Rule::NotOutstanding { id: 9 }));
    // A B before the burst's last W beat is not outstanding yet.
    let early_b = [with_aw(ar(2, 0, 1)), with_w(w(false, 0)), with_b(b(2))];
    assert_eq!(run(&early_b), violation(2, Channel::B, "bid", Rule::NotOutstanding { id: 2 }));
    // The ID's burst is done: a second response is one too many.
    let twice = [with_ar(ar(3, 0, 0)), with_r(r(3, true)), with_r(r(3, true))];
    assert_eq!(run(&twice), violation(2, Channel::R, "rid", Rule::NotOutstanding { id: 3 }));
}

#[test]
fn different_ids_may_answer_out_of_order_and_interleave() {
    let seq = [
        with_ar(ar(1, 0x0, 1)),
        with_ar(ar(2, 0x1000, 1)),
        with_r(r(2, false)),
        with_r(r(1, false)),
        with_r(r(2, true)),
        with_r(r(1, true)),
        with_aw(ar(6, 0, 0)),
        with_w(w(true, 0)),
        with_aw(ar(7, 0, 0)),
        with_w(w(true, 0)),
        with_b(b(7)),
        with_b(b(6)),
    ];
    assert_eq!(run(&seq), Ok(()));
}

#[test]
fn outstanding_limit_per_port() {
    let mut seq: Vec<Signals> = (0..MAX_READ_BURSTS as u64).map(|i| with_ar(ar(i as u8 % 4, i << 12, 0))).collect();
    // One completes at the same edge as the next address: still within the limit.
    seq.push(Signals { r: r(0, true), ar: ar(0, 0x10_0000, 0), ..Signals::default() });
    assert_eq!(run(&seq), Ok(()));
    seq.push(with_ar(ar(1, 0x20_0000, 0)));
    let cycle = seq.len() as u64 - 1;
    assert_eq!(
        run(&seq),
        violation(cycle, Channel::Ar, "arvalid", Rule::TooManyOutstanding { limit: MAX_READ_BURSTS })
    );
    let mut c = AxiChecker::new(PortName::Dev, 16, 2);
    for cycle in 0..2 {
        assert_eq!(c.observe(cycle, &with_aw(ar(0, 0, 0))), Ok(()));
    }
    let e = c.observe(2, &with_aw(ar(0, 0, 0))).unwrap_err();
    assert_eq!((e.port, e.channel, e.rule), (PortName::Dev, Channel::Aw, Rule::TooManyOutstanding { limit: 2 }));
}

#[test]
fn clear_forgets_bursts_in_flight() {
    let mut c = AxiChecker::new(PortName::Host, 16, 64);
    assert_eq!(c.observe(0, &with_ar(ar(1, 0, 0))), Ok(()));
    c.clear();
    assert!(c.observe(1, &with_r(r(1, true))).is_err());
}

#[test]
fn message_names_cycle_port_channel_and_field() {
    let e = run(&[with_w(stalled(w(false, 0))), Signals::default()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "AXI protocol violation at cycle 1 on the host-memory port, channel W, field wvalid: VALID dropped before READY"
    );
}
