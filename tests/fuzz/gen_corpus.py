#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of the fuzz harnesses: tests/fuzz/corpus/<target>/.

Each seed is a small script in the harness's input format (see the comment
at the top of each fuzz_<target>.c). Seeds are named for what they do;
`IOPF_FUZZ_TRACE=1 build-fuzz/tests/fuzz/fuzz-<target> corpus/<target>/<seed>`
shows them run. Crash reproducers kept as regression seeds live next to
them as files named `crash-*` (see README.md) and are not written here.

Usage: tests/fuzz/gen_corpus.py [OUTDIR]   (default: tests/fuzz/corpus)
"""
import os
import sys

# ---- fuzz-records: header bytes, then ops (fuzz_records.c, do_op) ----
(R_TRIGGER, R_TRIGGER1, R_RAW, R_FAIL, R_SMALL, R_DISPATCH, R_RESPOND,
 R_RESPOND_PRG, R_DETACH, R_DRAIN, R_FLUSH, R_ANSWER_INVALID, R_HANDLER,
 R_RESPOND_ALL, R_RESPOND_RANDOM) = range(15)
# handler decisions (one byte each time the handler runs)
H_SUCCESS, H_INVALID, H_DEFER, H_BOGUS, H_BOTH, H_OP = 0, 2, 3, 5, 6, 7


def r_header(read_records=0, max_extra=0, small_zero=False, close_fd=False,
             batch=0, max_out=0, handler=True, alloc=False):
    h0 = (read_records & 7) | (max_extra & 7) << 3 | small_zero << 6 | close_fd << 7
    h1 = (batch & 3) | (max_out & 3) << 2 | handler << 4 | alloc << 5
    return bytes([h0, h1])


def trigger1(dev, prgi=0, psel=0, perm=1):
    return bytes([R_TRIGGER1, dev | prgi << 2 | psel << 4 | perm << 6])


def trigger(n, dev, prgi=0, psel=0, shape=15, perm=1):
    return bytes([R_TRIGGER, (n - 1) | dev << 2 | prgi << 4 | psel << 6,
                  perm | shape << 4])


def raw(*recs):
    """recs: (flags, dev, prgi, cookie_sel, psel); cookie_sel 0: cookie 0,
    1: new, 2: as the record before, 3: an earlier raw cookie."""
    out = bytes([R_RAW, len(recs) - 1])
    for flags, dev, prgi, csel, psel in recs:
        r0 = (0x80 | flags) if flags > 3 else flags
        r0 |= dev << 2 | prgi << 4
        out += bytes([r0 & 0xff, csel | psel << 6])
    return out


def op(o, *args):
    return bytes([o, *args])


RECORDS = {
    # three single-record groups: answered at once, deferred, deferred
    # again and answered by handle from a nested op
    "basic": r_header() + trigger1(0) + trigger1(1, 1) + trigger1(2, 2, 1)
    + op(R_DISPATCH) + bytes([H_SUCCESS, H_DEFER, H_OP, R_RESPOND, 0])
    + op(R_RESPOND_ALL),
    # multi-record groups through a 1-record buffer that must grow to 3
    "grow": r_header(read_records=1, max_extra=3) + trigger(3, 1, 2, 1)
    + trigger(2, 0) + op(R_DISPATCH) + bytes([H_SUCCESS, H_INVALID]),
    # the newer kernels' answer to a too small buffer: 0 with POLLIN
    "grow-zero": r_header(read_records=1, max_extra=4, small_zero=True)
    + trigger(4, 3) + op(R_DISPATCH) + bytes([H_SUCCESS]),
    # broken shapes: no LAST, LAST twice, unknown flag, dev mismatch
    "malformed": r_header() + trigger(2, 0, shape=0) + trigger(2, 1, shape=1)
    + trigger(3, 2, shape=2) + trigger(2, 3, shape=3) + trigger(2, 0, shape=4)
    + op(R_DISPATCH) + bytes([H_SUCCESS] * 4),
    # raw records: cookie 0, a group of two, a stray partial, a reused cookie
    "raw": r_header() + raw((2, 1, 1, 0, 0))
    + raw((0, 2, 0, 1, 1), (2, 2, 0, 2, 1)) + raw((0, 3, 3, 1, 0))
    + raw((3, 1, 2, 3, 1)) + op(R_DISPATCH) + bytes([H_DEFER] * 3)
    + op(R_RESPOND_ALL) + op(R_DISPATCH),
    # detach told, device gone, untold (cookies come back), unwatch
    "detach": r_header() + trigger1(1) + trigger1(2) + trigger1(3)
    + op(R_DISPATCH) + bytes([H_DEFER] * 3) + op(R_DETACH, 1)
    + op(R_DETACH, 2 | 1 << 2) + op(R_DETACH, 3 | 2 << 2) + trigger1(3, 1)
    + trigger1(2, 1) + op(R_DISPATCH) + bytes([H_DEFER])
    + op(R_RESPOND_ALL) + op(R_DETACH, 2 | 3 << 2) + trigger1(2, 2)
    + op(R_DISPATCH) + bytes([H_SUCCESS]),
    # transient read and write failures, EIO on a read
    "failures": r_header(batch=2) + trigger1(0) + op(R_FAIL, 0)
    + op(R_FAIL, 1 | 1 << 1) + op(R_DISPATCH) + bytes([H_SUCCESS])
    + trigger1(1) + op(R_FAIL, 2 << 1) + op(R_DISPATCH) + op(R_DISPATCH)
    + bytes([H_SUCCESS]),
    # the guest path: answers by PRG index, answer_invalid, drain
    "guest": r_header() + trigger1(1, 2, 1) + trigger1(1, 2, 1)
    + trigger1(1, 3) + op(R_DISPATCH) + bytes([H_DEFER] * 3)
    + op(R_RESPOND_PRG, 1 | 1 << 2 | 2 << 4)
    + op(R_RESPOND_PRG, 1 | 1 << 2 | 2 << 4 | 1 << 6)
    + op(R_RESPOND_PRG, 1 | 1 << 2 | 2 << 4) + op(R_DRAIN, 1 | 0x10)
    + op(R_ANSWER_INVALID, 1 | 0x10) + op(R_DRAIN, 1 | 0x10) + op(R_FLUSH),
    # reading paused at max_outstanding 1, resumed as answers come
    "paused": r_header(max_out=1) + trigger1(0) + trigger1(1) + trigger1(2)
    + op(R_DISPATCH) + bytes([H_DEFER]) + op(R_RESPOND, 0) + op(R_DISPATCH)
    + bytes([H_DEFER]) + op(R_RESPOND, 1) + op(R_DISPATCH)
    + bytes([H_SUCCESS]),
    # the handler answers twice, returns nonsense, works from inside
    "handler": r_header(alloc=True, close_fd=True) + trigger1(0) + trigger1(1)
    + trigger1(2) + trigger1(3) + op(R_DISPATCH)
    + bytes([H_BOTH, H_BOGUS, H_OP, R_DETACH, 3, H_OP, R_DISPATCH])
    + op(R_HANDLER, 1 | 1 << 2) + op(R_HANDLER, 0x10) + trigger1(1)
    + trigger1(2) + op(R_DISPATCH) + bytes([H_SUCCESS])
    + op(R_RESPOND_RANDOM, 1, 1, 1),
}

# ---- fuzz-producer (fuzz_producer.c, do_op) ----
(P_SUBMIT, P_LAST, P_PARTIAL, P_RESPOND_PRG, P_RESPOND, P_FLUSH_PASID,
 P_DISCARD, P_DRAIN, P_ANSWER_INVALID, P_DISPATCH, P_CLOSE, P_FAIL_ALLOC,
 P_HANDLER, P_GONE, P_RESPOND_ALL) = range(15)
CB = 0  # the byte each respond callback takes (not 7: no submit from it)


def p_header(partial_cap=0, two=False, handler=True, max_out=False):
    return bytes([partial_cap | two << 2 | handler << 3 | max_out << 4])


def req(o, dev, prgi=0, psel=3, prod=0):
    """psel 0-2: PASID_VALID with 0, 1, 0xfffff; 3: no PASID."""
    return bytes([o, dev | psel << 2 | prgi << 4 | prod << 7])


PRODUCER = {
    # two partials and the LAST: one group of three, answered at once
    "group": p_header() + req(P_PARTIAL, 1) + req(P_PARTIAL, 1)
    + req(P_LAST, 1) + op(P_DISPATCH) + bytes([H_SUCCESS, CB]),
    # the same key twice, in two producers: guest answers by PRG index
    "guest": p_header(two=True) + req(P_LAST, 2, 1, 1) + req(P_LAST, 2, 1, 1)
    + req(P_LAST, 2, 1, 1, prod=1) + op(P_DISPATCH) + bytes([H_DEFER] * 3)
    + op(P_RESPOND_PRG, 2 | 1 << 2 | 1 << 4) + bytes([CB])
    + op(P_RESPOND_PRG, 2 | 1 << 2 | 1 << 4 | 1 << 6) + bytes([CB])
    + op(P_RESPOND_PRG, 2 | 1 << 2 | 1 << 4) + bytes([CB])
    + op(P_RESPOND_PRG, 2 | 1 << 2 | 1 << 4),
    # partial cap 1: a dropped partial, a truncated group; discard, flush
    "partials": p_header(partial_cap=1) + req(P_PARTIAL, 0) + req(P_PARTIAL, 0)
    + req(P_PARTIAL, 1, 2) + op(P_DISCARD, 1) + req(P_LAST, 0)
    + op(P_DISPATCH) + bytes([H_DEFER]) + op(P_FLUSH_PASID, 0 | 3 << 2)
    + bytes([CB]) + op(P_DISCARD, 2 << 2),
    # allocation failure: the LAST is answered INVALID inside submit
    "nomem": p_header() + op(P_FAIL_ALLOC, 0) + req(P_LAST, 3) + bytes([CB])
    + req(P_LAST, 3) + op(P_DISPATCH) + bytes([H_INVALID, CB]),
    # close a producer with groups outstanding, open another
    "close": p_header(two=True) + req(P_LAST, 0) + req(P_LAST, 1, prod=1)
    + op(P_DISPATCH) + bytes([H_DEFER, H_DEFER]) + op(P_CLOSE, 0 | 2)
    + bytes([CB]) + req(P_LAST, 0) + op(P_RESPOND_ALL) + bytes([CB]),
    # a device goes away: answers refused, submits refused; unwatch
    "gone": p_header() + req(P_LAST, 2) + op(P_DISPATCH) + bytes([H_DEFER])
    + op(P_GONE, 2 | 4) + req(P_LAST, 2) + op(P_RESPOND_PRG, 2 | 3 << 2)
    + op(P_GONE, 2) + req(P_LAST, 2) + op(P_DRAIN, 2 | 0x10)
    + op(P_ANSWER_INVALID, 2 | 0x10) + bytes([CB]),
    # the handler answers by handle and returns too; answers from inside
    "handler": p_header() + req(P_LAST, 1) + req(P_LAST, 1, 1)
    + op(P_DISPATCH) + bytes([H_BOTH, H_OP, P_RESPOND, 0, CB, CB])
    + op(P_RESPOND, 0x20) + op(P_HANDLER, 4),
}

# ---- fuzz-uevent: messages separated by ff fe ----


def uevent(action, devpath, subsystem="pci", seqnum=1234, extra=()):
    fields = [f"{action}@{devpath}", f"ACTION={action}", f"DEVPATH={devpath}",
              f"SUBSYSTEM={subsystem}", f"SEQNUM={seqnum}", *extra]
    return b"".join(f.encode() + b"\0" for f in fields)


SEP = b"\xff\xfe"
PCI4 = "/devices/pci0000:00/0000:00:04.0"
PCI5 = "/devices/pci0000:00/0000:00:05.0"
MOCK = "/devices/platform/iommu-test.0"
UEVENT = {
    "remove": uevent("remove", PCI4),
    "unbind-by-name": uevent("unbind", PCI5, extra=["DRIVER=vfio-pci"]),
    "add-then-remove": uevent("add", MOCK, "platform") + SEP
    + uevent("remove", MOCK, "platform", 1235),
    "libudev": b"libudev\0\xfe\xed\xca\xfe" + uevent("remove", PCI4)[8:],
    "untrusted": b"\xfd" + uevent("remove", PCI4),
    "disagree": uevent("remove", PCI4)[:-5] + b"DEVPATH=/devices/x\0",
    "bad-seqnum": uevent("remove", PCI4, seqnum="18446744073709551616"),
}

# ---- fuzz-api (fuzz_api.c): opts sections, then ops ----
# sizes (pick_sz): 0 this release, 3|n<<3 newer (+1+n), 4|n<<3 older (n),
# 5 only sz, 6|n<<3 n*8, 7 this release + 4096
U64 = bytes(8)


def a_ctx(sz=0, b1=0, b2=0, b3=0):
    """b1: workers (0-2), batch (3-5), max_outstanding from input (6);
    b2: deadline (0-1), log level (2-4), log fn (5); b3: tail byte, dirty (7)."""
    return bytes([sz, b1, b2, b3]) + (bytes(4) if b1 & 0x40 else b"") + U64


def a_fq(sz=0, b1=0, b2=0):
    """b1: flags (0-2), read_records (3-5), max (6-7 and b2 bit 0);
    b2: no out id (1), fd choice (3-4), NULL opts (5-6 both), dirty (7)."""
    return bytes([sz, b1, b2])


def a_prod(sz=0, b1=0):
    """b1: no respond (0), cap from input (1), cap (2-3), NULL opts (2-6
    all), dirty (7)."""
    return bytes([sz, b1]) + U64 + (bytes(4) if b1 & 2 else b"")


def a_stats(sz=0, fill=0):
    return bytes([sz, fill]) + U64


(A_RESPOND, A_RESPOND_PRG, A_DETACH, A_INVALID_DRAIN, A_SUBMIT, A_PARTIALS,
 A_HANDLER_LOG, A_DEVICE, A_WATCH, A_RAISE, A_CLOSE, A_FAIL_ALLOC) = range(12)


def a_op(o, f=0, dev=0, *rest):
    return bytes([o, f, dev, *rest])


API_DEFAULT = a_ctx() + a_fq() + a_fq() + a_prod() + a_stats()
API = {
    # defaults; groups on both queues; answers by handle, near misses too
    "handles": API_DEFAULT + a_op(A_RAISE, 0x30, 0) + a_op(A_RAISE, 0x30, 5)
    + a_op(A_RESPOND, 0x10, 0) + a_op(A_RESPOND, 0x10, 0)
    + a_op(A_RESPOND, 0x30, 1) + a_op(A_RESPOND, 0x50, 2)
    + a_op(A_RESPOND, 0x90, 3) + a_op(A_RESPOND, 0x14, 3)
    + a_op(A_RESPOND, 0x00, 0) + (1 << 32 | 1).to_bytes(8, "little")
    + a_op(A_RESPOND_PRG, 0, 1, 1) + a_op(A_RESPOND_PRG, 0x20, 0x81, 0),
    # newer, larger structs with a dirty tail: all refused (EINVAL)
    "dirty-tails": a_ctx(3 | 2 << 3, 0, 0, 0x85) + a_fq(3 | 4 << 3, 0, 0x80)
    + a_fq(3 | 1 << 3, 0, 0x80) + a_prod(3, 0x80) + a_stats(7, 0x11),
    # older structs (sz only, cut through fields), bad flags, bad fds
    "small-structs": a_ctx(5, 0x3f, 0x3c) + a_fq(4 | 12 << 3, 0x04, 0x18)
    + a_fq(5, 0x05, 0x18) + a_prod(4 | 12 << 3, 0x01) + a_stats(4 | 1 << 3)
    + a_op(A_HANDLER_LOG, 0x40, 0, 0x7f),
    # requests with every field from the input; partials; flags
    "requests": a_ctx(0, 0x40) + a_fq(0, 0x2a, 0x01) + a_fq(0, 0x02, 0x02)
    + a_prod(0, 0x06) + a_stats(0, 0x81)
    + a_op(A_SUBMIT, 0x00, 1, 1, 1) + a_op(A_SUBMIT, 0x40, 1, 1, 1)
    + a_op(A_SUBMIT, 0x10, 2) + (7).to_bytes(4, "little") + bytes([0, 0])
    + a_op(A_SUBMIT, 0x60, 0x83, 2) + (1).to_bytes(4, "little") + bytes([0])
    + a_op(A_PARTIALS, 0x40, 1) + a_op(A_PARTIALS, 0x20, 1)
    + a_op(A_PARTIALS, 0x80, 1) + a_op(A_FAIL_ALLOC, 0, 0)
    + a_op(A_SUBMIT, 0x40, 3, 0, 0),
    # devices, detach with odd flags, answer_invalid and drain, close
    "devices": API_DEFAULT + a_op(A_RAISE, 0x10, 1) + a_op(A_RAISE, 0x20, 2)
    + a_op(A_DETACH, 0x10, 1) + (2).to_bytes(4, "little")
    + a_op(A_DETACH, 0x00, 1) + a_op(A_DEVICE, 0x10, 2)
    + a_op(A_SUBMIT, 0x40, 2, 0, 0) + a_op(A_DEVICE, 0x00, 2)
    + a_op(A_WATCH, 0x10, 14) + b"pci0000:00/00\0"
    + a_op(A_INVALID_DRAIN, 0x20, 1) + a_op(A_INVALID_DRAIN, 0x80, 1)
    + a_op(A_INVALID_DRAIN, 0x10, 1) + (0x80).to_bytes(4, "little")
    + a_op(A_CLOSE, 0x00, 0) + a_op(A_CLOSE, 0x10, 0) + a_op(A_RAISE, 0x30, 3),
}


def write(outdir, target, seeds):
    d = os.path.join(outdir, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    write(outdir, "records", RECORDS)
    write(outdir, "producer", PRODUCER)
    write(outdir, "uevent", UEVENT)
    write(outdir, "api", API)


if __name__ == "__main__":
    main()
