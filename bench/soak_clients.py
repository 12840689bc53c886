#!/usr/bin/env python3
"""The clients of bench/soak.sh: good and hostile clients against one `rill echo --mode
persistent` server on loopback, for a given time, while the server's memory and descriptors are
sampled every second. Python 3 standard library only.

Good clients send random lines (random lengths up to just under the server's line cap, random
UTF-8, and raw non-UTF-8 bytes on a server without transcoder) and check every byte of every
answer; "split" clients do the same but send each request in small pieces cut anywhere (mid-line,
mid-character) with pauses between. Hostile clients flood and read slowly or never, never read,
reset (SO_LINGER {1, 0}) at random stages, stay silent, send over-long lines, send garbage.

At the end every connection is dropped, the server's descriptor count must come back to what it
was before the first client, a last good client must be answered, and the samples taken after the
warm-up must be flat (see judge_flatness). Prints a summary, writes it as JSON (--report), and
exits 0 only when nothing failed.
"""

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import signal
import socket
import struct
import sys
import time

# rill's default max_line_length: a line is capped at this many bytes of UTF-8 text.
LINE_CAP_BYTES = 65536
# The longest line a good client sends: under the cap, whatever the wire codec.
GOOD_LINE_MAX_BYTES = 60000
# A good client's answer that takes longer than this is a failure (a stalled worker).
ANSWER_LIMIT_S = 10.0
CONNECT_LIMIT_S = 10.0
# No client connection lives longer than this (its own schedule is shorter).
CLIENT_LIFETIME_LIMIT_S = 120.0
SAMPLE_INTERVAL_S = 1.0
# The latency probe (a process of its own, so the load clients' event loop does not delay it):
# one short line every this often, on a connection it replaces every PROBE_REQUESTS_PER_CONNECTION.
PROBE_INTERVAL_S = 0.02
PROBE_REQUESTS_PER_CONNECTION = 500
# Once every client has gone, the server's descriptors must be back to their baseline within this.
FD_SETTLE_LIMIT_S = 15.0
# StreamReader limit of hostile connections: asyncio stops reading the socket once twice this is
# buffered, so a client that reads slowly (or never) really leaves the server's answers unread.
HOSTILE_READ_BUFFER_BYTES = 16 * 1024

# Connections of each kind kept open at once (times --scale).
POPULATION = {
    "good": 12,
    "split": 4,
    "flood_slow_reader": 2,
    "flood_never_reader": 2,
    "never_reader": 3,
    "resetter": 4,
    "silent": 12,
    "overlong": 2,
    "garbage": 2,
}
VERIFIED_KINDS = ("good", "split")

# Wire codecs a transcoded variant may use: rill's codec name -> Python's, and the highest code
# point it carries.
CODECS = {
    "utf_8": ("utf-8", 0x10FFFF),
    "utf_16le": ("utf-16-le", 0x10FFFF),
    "utf_16be": ("utf-16-be", 0x10FFFF),
    "ucs_2le": ("utf-16-le", 0xFFFF),
    "ucs_2be": ("utf-16-be", 0xFFFF),
    "ucs_4le": ("utf-32-le", 0x10FFFF),
    "ucs_4be": ("utf-32-be", 0x10FFFF),
    "iso_8859_1": ("latin-1", 0xFF),
    "latin1": ("latin-1", 0xFF),
    "ascii": ("ascii", 0x7F),
}
EOLS = {"crlf": "\r\n", "lf": "\n", "cr": "\r"}


class Wire:
    """How one server variant puts text on the wire, and what its echo of a line is."""

    def __init__(self, spec):
        self.spec = spec
        if spec == "plain":
            # No transcoder: byte-transparent, '\n' written as CR LF.
            self.codec, self.max_code_point = None, 0x10FFFF
            self.answer_end, self.line_end = b"\r\n", b"\n"
            return
        parts = spec.split(",")
        name = parts[0].lower().replace("-", "_")
        eol = parts[1].lower() if len(parts) > 1 else "crlf"
        if name not in CODECS:
            raise SystemExit(f"soak_clients: no wire model for codec {parts[0]!r} "
                             f"(one of {', '.join(CODECS)})")
        if eol not in EOLS:
            raise SystemExit(f"soak_clients: no wire model for eol style {eol!r} "
                             f"(one of {', '.join(EOLS)})")
        self.codec, self.max_code_point = CODECS[name]
        # Every eol style ends a line at LF on input; the answer ends the style's way.
        self.answer_end = EOLS[eol].encode(self.codec)
        self.line_end = "\n".encode(self.codec)

    def encode(self, text):
        return text.encode("utf-8" if self.codec is None else self.codec, "surrogatepass")


class Text:
    """Random lines: slices of a pool of random characters (no CR, LF, surrogates or BOM),
    encoded for the wire ahead of time (encoding is what a Python client spends most on): a
    cache of lines with random lengths, one of them replaced by a new one now and then."""

    RANGES = [  # (first, last, weight)
        (0x20, 0x7E, 50), (0x00, 0x08, 1), (0x09, 0x09, 1), (0x0B, 0x0C, 1), (0x0E, 0x1F, 1),
        (0x7F, 0xFF, 8), (0x100, 0x7FF, 10), (0x800, 0xD7FF, 10), (0xE000, 0xFEFE, 3),
        (0xFF00, 0xFFFD, 1), (0x10000, 0x10FFFF, 6),
    ]
    CACHED_LINES = 4096
    RENEW_PROBABILITY = 0.02

    def __init__(self, rng, wire, pool_chars=1 << 18, cached_lines=CACHED_LINES):
        self.rng, self.wire = rng, wire
        ranges = [(a, min(b, wire.max_code_point), w) for a, b, w in self.RANGES
                  if a <= wire.max_code_point]
        picks = rng.choices(ranges, weights=[w for _, _, w in ranges], k=pool_chars)
        self.pool = "".join(chr(rng.randint(a, b)) for a, b, _ in picks)
        self.lines = [self.new_line() for _ in range(cached_lines)]
        self.long_lines = [wire.encode(self.text_of_utf8_length(GOOD_LINE_MAX_BYTES))
                           for _ in range(8)]
        # Text without line ends, LINE_CAP_BYTES of UTF-8 each: the over-long lines' stuff.
        self.blocks = [wire.encode(self.text_of_utf8_length(LINE_CAP_BYTES)) for _ in range(4)]

    def random_length(self):
        r = self.rng.random()
        if r < 0.60:
            return self.rng.randint(0, 80)
        if r < 0.85:
            return self.rng.randint(80, 1000)
        if r < 0.95:
            return self.rng.randint(1000, 8000)
        return self.rng.randint(8000, GOOD_LINE_MAX_BYTES)

    def text_of_utf8_length(self, n):
        """Random text of at most n bytes in UTF-8 (the unit of the server's line cap)."""
        start = self.rng.randrange(len(self.pool))
        text = self.pool[start:start + n]
        while len(text) < n:
            text += self.pool[:n - len(text)]
        encoded = text.encode("utf-8")
        if len(encoded) > n:
            text = encoded[:n].decode("utf-8", "ignore")
        return text

    def new_line(self):
        n = self.random_length()
        if self.wire.codec is None and self.rng.random() < 0.1:
            # A stream without transcoder passes any byte but the line ends through unchanged.
            raw = self.rng.randbytes(n)
            return raw.replace(b"\r", b"\x00").replace(b"\n", b"\xff")
        return self.wire.encode(self.text_of_utf8_length(n))

    def random_line(self):
        """The bytes of one line on the wire, without its line end."""
        i = self.rng.randrange(len(self.lines))
        if self.rng.random() < self.RENEW_PROBABILITY:
            self.lines[i] = self.new_line()
        return self.lines[i]

    def long_line(self):
        return self.rng.choice(self.long_lines)

    def over_long_line(self):
        """A line (no line end) longer than the server's cap, by 1 byte to 3 caps."""
        extra = self.wire.encode(self.text_of_utf8_length(self.rng.randint(1, 3 * LINE_CAP_BYTES)))
        return self.rng.choice(self.blocks) + extra


class Latency:
    """A histogram of seconds in buckets 2% wide (1 us to about an hour)."""

    BASE = 1.02

    def __init__(self):
        self.buckets, self.count, self.max = {}, 0, 0.0

    def add(self, seconds):
        us = max(seconds * 1e6, 1.0)
        b = int(math.log(us, self.BASE))
        self.buckets[b] = self.buckets.get(b, 0) + 1
        self.count += 1
        self.max = max(self.max, seconds)

    def percentile(self, p):
        if not self.count:
            return None
        rank, seen = p / 100.0 * self.count, 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                return min(self.BASE ** (b + 1) / 1e6, self.max)
        return self.max


class KindTally:
    def __init__(self):
        self.connections = 0
        self.connect_failures = 0
        self.closed_by_server = 0  # end of stream seen, or a reset/broken pipe from the server
        self.ended_by_client = 0
        self.bytes_sent = 0

    def as_dict(self):
        return dict(self.__dict__)


class Soak:
    def __init__(self, args):
        self.args = args
        self.host, port = args.address.rsplit(":", 1)
        self.port = int(port)
        self.wire = Wire(args.variant)
        self.rng = random.Random(args.seed)
        self.text = Text(self.rng, self.wire)
        self.flood_chunks = [self.flood_chunk() for _ in range(8)]
        self.stopping = False
        self.interrupted = False
        self.failures = 0
        self.failure_messages = []
        self.verified = {k: 0 for k in VERIFIED_KINDS}
        self.verified_bytes = {k: 0 for k in VERIFIED_KINDS}
        self.latency = Latency()
        self.probe_latency = Latency()
        self.probe_count = 0
        self.tally = {k: KindTally() for k in POPULATION}
        self.samples = []
        self.server_gone = False

    # ---- bookkeeping ----------------------------------------------------------------------

    def fail(self, message):
        self.failures += 1
        if len(self.failure_messages) < 20:
            self.failure_messages.append(message)
        print(f"soak[{self.args.variant}] FAILURE: {message}", file=sys.stderr, flush=True)

    def flood_chunk(self):
        lines, size = [], 0
        while size < 64 * 1024:
            line = self.text.random_line() + self.wire.line_end
            lines.append(line)
            size += len(line)
        return b"".join(lines)

    # ---- connections ----------------------------------------------------------------------

    async def connect(self, kind, limit=None):
        self.tally[kind].connections += 1
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, limit=limit or 2**20),
                CONNECT_LIMIT_S)
        except (OSError, asyncio.TimeoutError) as e:
            self.tally[kind].connect_failures += 1
            if kind in VERIFIED_KINDS:
                self.fail(f"{kind}: connect to {self.args.address}: {e!r}")
            return None, None

    @staticmethod
    def reset(writer):
        """Ends the connection with an RST: SO_LINGER {1, 0}, then close."""
        sock = writer.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        writer.transport.abort()

    def close(self, kind, writer):
        """Ends a hostile connection: half the time with a reset, else a plain close."""
        self.tally[kind].ended_by_client += 1
        if self.rng.random() < 0.5:
            self.reset(writer)
        else:
            writer.transport.abort()  # the kernel sends a FIN (or an RST if answers are unread)

    def remaining(self):
        return max(0.0, self.deadline - time.monotonic())

    # ---- good clients -----------------------------------------------------------------------

    async def send_split(self, writer, payload):
        """Sends payload in pieces cut anywhere, with short pauses between some of them."""
        rng, i = self.rng, 0
        largest = max(1, len(payload) // 20)
        while i < len(payload):
            n = rng.randint(1, min(largest, 64) if rng.random() < 0.7 else largest)
            writer.write(payload[i:i + n])
            i += n
            await writer.drain()
            if rng.random() < 0.1:
                await asyncio.sleep(rng.uniform(0.001, 0.02))

    async def send_whole(self, writer, payload):
        writer.write(payload)
        await writer.drain()

    async def good_client(self, kind, requests=None):
        reader, writer = await self.connect(kind)
        if writer is None:
            return
        rng = self.rng
        label = f"{kind} client #{self.tally[kind].connections}"
        try:
            for request in range(requests or rng.randint(1, 300)):
                if self.stopping:
                    return
                depth = rng.choice((1, 1, 1, 1, 2, 3, 8))
                lines = [self.text.random_line() for _ in range(depth)]
                payload = b"".join(line + self.wire.line_end for line in lines)
                self.tally[kind].bytes_sent += len(payload)
                start = time.monotonic()
                send = self.send_split if kind == "split" else self.send_whole
                sending = asyncio.ensure_future(send(writer, payload))
                try:
                    for i, line in enumerate(lines):
                        expected = line + self.wire.answer_end
                        where = f"{label} request {request} line {i} ({len(expected)} bytes)"
                        try:
                            got = await asyncio.wait_for(reader.readexactly(len(expected)),
                                                         ANSWER_LIMIT_S)
                        except asyncio.IncompleteReadError as e:
                            self.fail(f"{where}: the server closed after {len(e.partial)} bytes"
                                      f"{mismatch(expected, e.partial)}")
                            return
                        except asyncio.TimeoutError:
                            self.fail(f"{where}: no whole answer within {ANSWER_LIMIT_S} s")
                            return
                        except OSError as e:
                            self.fail(f"{where}: {e!r}")
                            return
                        if got != expected:
                            self.fail(f"{where}: wrong answer{mismatch(expected, got)}")
                            return
                        self.verified[kind] += 1
                        self.verified_bytes[kind] += len(expected)
                        if kind == "good":
                            self.latency.add(time.monotonic() - start)
                    await asyncio.wait_for(sending, ANSWER_LIMIT_S)
                finally:
                    if not sending.done():
                        sending.cancel()
            if rng.random() < 0.5:
                # Half-close: the server must answer nothing more and close its side.
                writer.write_eof()
                try:
                    rest = await asyncio.wait_for(reader.read(), ANSWER_LIMIT_S)
                except (OSError, asyncio.TimeoutError) as e:
                    self.fail(f"{label}: after its end of stream: {e!r}")
                    return
                if rest:
                    self.fail(f"{label}: {len(rest)} unexpected bytes after its end of stream: "
                              f"{rest[:40]!r}")
        except OSError as e:
            self.fail(f"{label}: {e!r}")
        finally:
            writer.transport.abort()

    # ---- hostile clients ----------------------------------------------------------------------

    def note_server_close(self, kind):
        self.tally[kind].closed_by_server += 1

    async def flood(self, kind, writer, until):
        """Sends flood chunks until `until`; False when the server closed the connection."""
        rng = self.rng
        try:
            while time.monotonic() < until and not self.stopping:
                chunk = rng.choice(self.flood_chunks)
                writer.write(chunk)
                self.tally[kind].bytes_sent += len(chunk)
                await asyncio.wait_for(writer.drain(), max(0.01, until - time.monotonic()))
        except asyncio.TimeoutError:
            pass  # stuck until the end of its life: the server stopped reading
        except OSError:
            return False
        return True

    async def flood_slow_reader(self):
        kind = "flood_slow_reader"
        reader, writer = await self.connect(kind, HOSTILE_READ_BUFFER_BYTES)
        if writer is None:
            return
        until = time.monotonic() + self.rng.uniform(2, 15)

        async def read_slowly():
            while time.monotonic() < until:
                data = await reader.read(self.rng.randint(512, 8192))
                if not data:
                    return False
                await asyncio.sleep(self.rng.uniform(0.02, 0.2))
            return True

        reading = asyncio.ensure_future(read_slowly())
        try:
            open_ = await self.flood(kind, writer, until)
            if not open_ or (reading.done() and (reading.exception() is not None
                                                 or reading.result() is False)):
                self.note_server_close(kind)
            else:
                self.close(kind, writer)
        finally:
            reading.cancel()
            writer.transport.abort()

    async def flood_never_reader(self):
        kind = "flood_never_reader"
        reader, writer = await self.connect(kind, HOSTILE_READ_BUFFER_BYTES)
        if writer is None:
            return
        try:
            if await self.flood(kind, writer, time.monotonic() + self.rng.uniform(2, 15)):
                self.close(kind, writer)
            else:
                self.note_server_close(kind)
        finally:
            writer.transport.abort()

    async def never_reader(self):
        kind = "never_reader"
        reader, writer = await self.connect(kind, HOSTILE_READ_BUFFER_BYTES)
        if writer is None:
            return
        try:
            for _ in range(self.rng.randint(1, 40)):
                line = self.text.random_line() + self.wire.line_end
                writer.write(line)
                self.tally[kind].bytes_sent += len(line)
            await asyncio.sleep(min(self.rng.uniform(1, 20), self.remaining()))
            if reader.at_eof():
                self.note_server_close(kind)
            else:
                self.close(kind, writer)
        finally:
            writer.transport.abort()

    async def resetter(self):
        kind = "resetter"
        reader, writer = await self.connect(kind, HOSTILE_READ_BUFFER_BYTES)
        if writer is None:
            return
        rng = self.rng
        try:
            stage = rng.choice(("connect", "mid_line", "full_line", "large_answer", "mid_answer"))
            payload = b""
            if stage == "mid_line":
                # Part of a line: often ends inside a multi-byte character.
                line = self.text.random_line()
                payload = line[:rng.randint(0, len(line))]
            elif stage in ("full_line", "mid_answer"):
                payload = b"".join(self.text.random_line() + self.wire.line_end
                                   for _ in range(rng.randint(1, 3)))
            elif stage == "large_answer":
                payload = (self.text.long_line() + self.wire.line_end) * rng.randint(10, 40)
            writer.write(payload)
            self.tally[kind].bytes_sent += len(payload)
            await asyncio.sleep(rng.uniform(0, 0.05))
            if stage in ("mid_answer", "large_answer") and rng.random() < 0.5:
                try:
                    await asyncio.wait_for(reader.read(rng.randint(1, 16384)), 1.0)
                except (asyncio.TimeoutError, OSError):
                    pass
            self.tally[kind].ended_by_client += 1
            self.reset(writer)
        finally:
            writer.transport.abort()

    async def silent(self):
        kind = "silent"
        reader, writer = await self.connect(kind)
        if writer is None:
            return
        try:
            try:
                data = await asyncio.wait_for(reader.read(4096),
                                              min(self.rng.uniform(1, 30), self.remaining()))
            except asyncio.TimeoutError:
                self.close(kind, writer)
                return
            except OSError:
                self.note_server_close(kind)
                return
            if data:
                self.fail(f"silent client: the server sent {len(data)} bytes unasked: {data[:40]!r}")
            else:
                self.note_server_close(kind)  # a reader timeout, for one
        finally:
            writer.transport.abort()

    async def overlong(self):
        kind = "overlong"
        reader, writer = await self.connect(kind, HOSTILE_READ_BUFFER_BYTES)
        if writer is None:
            return
        rng = self.rng
        try:
            if rng.random() < 0.5:
                # One line over the cap, then an ordinary one.
                payload = (self.text.over_long_line() + self.wire.line_end
                           + self.text.random_line() + self.wire.line_end)
            else:
                # Megabytes without any line end.
                payload = b"".join(rng.choice(self.text.blocks) for _ in range(rng.randint(4, 64)))
            writer.write(payload)
            self.tally[kind].bytes_sent += len(payload)
            try:
                await asyncio.wait_for(writer.drain(), 10)
                while await asyncio.wait_for(reader.read(65536), 5):
                    pass
                self.note_server_close(kind)
            except OSError:
                self.note_server_close(kind)
            except asyncio.TimeoutError:
                self.close(kind, writer)
        finally:
            writer.transport.abort()

    async def garbage(self):
        kind = "garbage"
        reader, writer = await self.connect(kind, HOSTILE_READ_BUFFER_BYTES)
        if writer is None:
            return
        rng = self.rng
        until = time.monotonic() + rng.uniform(1, 10)

        async def discard():
            while await reader.read(65536):
                pass

        draining = asyncio.ensure_future(discard())
        try:
            while time.monotonic() < until and not self.stopping:
                chunk = rng.randbytes(rng.randint(1, 65536))
                writer.write(chunk)
                self.tally[kind].bytes_sent += len(chunk)
                await asyncio.wait_for(writer.drain(), 5)
                await asyncio.sleep(rng.uniform(0, 0.05))
            self.close(kind, writer)
        except (OSError, asyncio.TimeoutError):
            self.note_server_close(kind)
        finally:
            draining.cancel()
            writer.transport.abort()

    # ---- schedule ---------------------------------------------------------------------------

    async def slot(self, kind):
        run = {"good": lambda: self.good_client("good"), "split": lambda: self.good_client("split"),
               "flood_slow_reader": self.flood_slow_reader,
               "flood_never_reader": self.flood_never_reader, "never_reader": self.never_reader,
               "resetter": self.resetter, "silent": self.silent, "overlong": self.overlong,
               "garbage": self.garbage}[kind]
        while not self.stopping:
            try:
                await asyncio.wait_for(run(), CLIENT_LIFETIME_LIMIT_S)
            except asyncio.TimeoutError:
                if kind in VERIFIED_KINDS:
                    self.fail(f"{kind} client still busy after {CLIENT_LIFETIME_LIMIT_S} s")
            except (OSError, asyncio.IncompleteReadError) as e:
                if kind in VERIFIED_KINDS:
                    self.fail(f"{kind} client: {e!r}")
                else:
                    self.note_server_close(kind)
            await asyncio.sleep(self.rng.uniform(0, 0.05))

    def sample(self):
        pid = self.args.server_pid
        try:
            with open(f"/proc/{pid}/status") as f:
                rss_kib = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, StopIteration, ValueError, IndexError):
            return None
        return {"t": round(time.monotonic() - self.started, 3), "rss_kib": rss_kib, "fds": fds,
                "cpu_s": cpu_s, "verified": sum(self.verified.values()),
                "failures": self.failures}

    async def sampler(self):
        while not self.stopping:
            s = self.sample()
            if s is None:
                self.server_gone = True
                self.fail(f"the server (pid {self.args.server_pid}) is gone")
                self.stopping = True
                return
            self.samples.append(s)
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    async def fds_now(self):
        s = self.sample()
        return None if s is None else s["fds"]

    async def settle_fds(self, target, limit):
        """Waits until the server holds at most `target` descriptors; (count, seconds waited)."""
        start = time.monotonic()
        fds = await self.fds_now()
        while fds is not None and fds > target and time.monotonic() - start < limit:
            await asyncio.sleep(0.1)
            fds = await self.fds_now()
        return fds, round(time.monotonic() - start, 2)

    async def main(self):
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: (setattr(self, "interrupted", True), stop.set()))
        self.started = time.monotonic()
        self.deadline = self.started + self.args.duration

        # Baseline: the server after one good exchange, idle again (the same count three
        # times in a row, 0.1 s apart).
        await self.good_client_once("warm-up")
        counts = []
        for _ in range(50):
            counts.append(await self.fds_now())
            if counts[-1] is None or counts[-3:] == [counts[-1]] * 3:
                break
            await asyncio.sleep(0.1)
        self.baseline_fds = counts[-1]
        if self.baseline_fds is None:
            self.fail(f"the server (pid {self.args.server_pid}) is not running")
            return
        self.baseline_rss_kib = self.sample()["rss_kib"]

        # The latency probe starts after the baseline: its connection is not part of it.
        receiving, sending = multiprocessing.Pipe(duplex=False)
        prober = multiprocessing.get_context("fork").Process(
            target=probe, daemon=True,
            args=(self.host, self.port, self.args.variant, self.args.seed + 1000, self.deadline,
                  sending))
        prober.start()
        tasks = [asyncio.ensure_future(self.sampler())]
        for kind, n in POPULATION.items():
            if self.args.kinds and kind not in self.args.kinds:
                continue
            for _ in range(max(1, round(n * self.args.scale))):
                tasks.append(asyncio.ensure_future(self.slot(kind)))
        try:
            await asyncio.wait_for(stop.wait(), self.args.duration)
        except asyncio.TimeoutError:
            pass
        self.stopping = True
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, Exception):
                self.fail(f"a client ended with {r!r}")
        self.duration_s = round(time.monotonic() - self.started, 1)
        got = await loop.run_in_executor(None, receiving.poll, ANSWER_LIMIT_S + CONNECT_LIMIT_S)
        if got:
            r = receiving.recv()
            self.probe_count, self.probe_latency.max = r["count"], r["max"]
            self.probe_latency.buckets, self.probe_latency.count = r["buckets"], r["count"]
            for m in r["messages"]:
                self.fail(m)
            self.failures += max(0, r["failures"] - len(r["messages"]))
        else:
            self.fail("the latency probe gave no result")
        prober.join(1)
        if prober.is_alive():
            prober.kill()
        if self.server_gone:
            return
        # Every client connection is closed now: the server must give their descriptors back.
        self.final_fds, self.settle_s = await self.settle_fds(self.baseline_fds, FD_SETTLE_LIMIT_S)
        if self.final_fds is None:
            self.server_gone = True
            self.fail(f"the server (pid {self.args.server_pid}) is gone")
            return
        if self.final_fds > self.baseline_fds:
            self.fail(f"the server holds {self.final_fds} descriptors {FD_SETTLE_LIMIT_S:g} s "
                      f"after every client left; {self.baseline_fds} before the first")
        s = self.sample()
        self.final_rss_kib = s["rss_kib"] if s else None
        self.stopping = False
        await self.good_client_once("last")

    async def good_client_once(self, what):
        # One good client of a few requests; its failures count like any other.
        before = self.failures
        try:
            await asyncio.wait_for(self.good_client("good", requests=5), CLIENT_LIFETIME_LIMIT_S)
        except (asyncio.TimeoutError, OSError) as e:
            self.fail(f"the {what} good client: {e!r}")
        if self.failures > before:
            self.fail(f"the {what} good client was not served")


def probe(host, port, variant, seed, until, results):
    """The latency probe, run in a process of its own: a well-behaved blocking client that
    sends one short random line every PROBE_INTERVAL_S until `until` (time.monotonic()), checks
    each answer and times it; sends its tally through the `results` pipe."""
    signal.set_wakeup_fd(-1)  # the parent's event loop owns that descriptor
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    rng = random.Random(seed)
    wire = Wire(variant)
    text = Text(rng, wire, pool_chars=1 << 14, cached_lines=0)
    latency, count, failures, messages = Latency(), 0, 0, []
    sock, on_this_connection = None, 0
    while time.monotonic() < until:
        try:
            if sock is None or on_this_connection >= PROBE_REQUESTS_PER_CONNECTION:
                if sock is not None:
                    sock.close()
                sock = socket.create_connection((host, port), timeout=CONNECT_LIMIT_S)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(ANSWER_LIMIT_S)
                on_this_connection = 0
            line = wire.encode(text.text_of_utf8_length(rng.randint(1, 64)))
            expected = line + wire.answer_end
            start = time.monotonic()
            sock.sendall(line + wire.line_end)
            got = b""
            while len(got) < len(expected):
                chunk = sock.recv(len(expected) - len(got))
                if not chunk:
                    raise ConnectionError(f"the server closed after {len(got)} bytes of an answer")
                got += chunk
            latency.add(time.monotonic() - start)
            on_this_connection += 1
            if got != expected:
                raise ValueError("wrong answer" + mismatch(expected, got))
            count += 1
        except (OSError, ValueError) as e:
            failures += 1
            if len(messages) < 5:
                messages.append(f"probe request {count}: {e!r}")
            if sock is not None:
                sock.close()
            sock = None
        time.sleep(PROBE_INTERVAL_S)
    if sock is not None:
        sock.close()
    results.send({"count": count, "failures": failures, "messages": messages,
                  "buckets": latency.buckets, "max": latency.max})


def mismatch(expected, got):
    """Where `got` first differs from `expected`, with the bytes around it."""
    for i in range(min(len(expected), len(got))):
        if expected[i] != got[i]:
            break
    else:
        i = min(len(expected), len(got))
        if len(got) == len(expected):
            return ""
    lo = max(0, i - 8)
    return (f": first difference at byte {i} of {len(expected)}: expected "
            f"{expected[lo:i + 16].hex(' ')}, got {got[lo:i + 16].hex(' ')}")


def judge_flatness(samples, duration, warmup_s, rss_percent, rss_mib, fd_slack):
    """Flat: after the warm-up, the samples are split into a first and a second half in time;
    the second half's highest RSS may exceed the first half's by at most rss_percent % of it or
    rss_mib MiB, whichever is larger, and its highest descriptor count the first half's by at
    most fd_slack. Also reports the RSS trend (least squares, MiB per minute) for information."""
    post = [s for s in samples if s["t"] >= warmup_s]
    verdict = {"warmup_s": warmup_s, "samples": len(samples), "judged_samples": len(post)}
    if len(post) < 4:
        verdict.update(judged=False, flat=True, why="too few samples after the warm-up to judge")
        return verdict
    half = len(post) // 2
    first, second = post[:half], post[half:]
    rss_a = max(s["rss_kib"] for s in first)
    rss_b = max(s["rss_kib"] for s in second)
    fd_a = max(s["fds"] for s in first)
    fd_b = max(s["fds"] for s in second)
    rss_allowed = max(rss_a * rss_percent / 100.0, rss_mib * 1024)
    ts = [s["t"] for s in post]
    rs = [s["rss_kib"] for s in post]
    mt, mr = sum(ts) / len(ts), sum(rs) / len(rs)
    var = sum((t - mt) ** 2 for t in ts)
    slope = sum((t - mt) * (r - mr) for t, r in zip(ts, rs)) / var if var else 0.0
    verdict.update(
        judged=True,
        rss_first_half_max_kib=rss_a, rss_second_half_max_kib=rss_b,
        rss_growth_kib=rss_b - rss_a, rss_allowed_growth_kib=round(rss_allowed),
        rss_min_kib=min(rs), rss_trend_mib_per_min=round(slope * 60 / 1024, 3),
        fds_first_half_max=fd_a, fds_second_half_max=fd_b, fd_allowed_growth=fd_slack,
        rss_flat=rss_b - rss_a <= rss_allowed, fds_flat=fd_b - fd_a <= fd_slack)
    verdict["flat"] = verdict["rss_flat"] and verdict["fds_flat"]
    return verdict


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.2f} ms"


def report(soak, args):
    warmup = min(max(args.warmup_min_s, args.duration * args.warmup_fraction), args.duration / 2)
    flat = judge_flatness(soak.samples, args.duration, warmup, args.rss_tolerance_percent,
                          args.rss_tolerance_mib, args.fd_tolerance)
    lat, probe_lat = soak.latency, soak.probe_latency
    r = {
        "variant": args.variant, "address": args.address, "server_pid": args.server_pid,
        "seed": args.seed, "duration_s": getattr(soak, "duration_s", None),
        "interrupted": soak.interrupted, "server_gone": soak.server_gone,
        "verified_answers": soak.verified, "verified_bytes": soak.verified_bytes,
        "probe_answers": soak.probe_count,
        "failures": soak.failures, "failure_messages": soak.failure_messages,
        "probe_latency_s": {p: probe_lat.percentile(float(p)) for p in ("50", "90", "99", "99.9")}
        | {"max": probe_lat.max if probe_lat.count else None, "count": probe_lat.count},
        "load_latency_s": {p: lat.percentile(float(p)) for p in ("50", "90", "99", "99.9")}
        | {"max": lat.max if lat.count else None, "count": lat.count},
        "clients": {k: t.as_dict() for k, t in soak.tally.items()},
        "baseline_fds": getattr(soak, "baseline_fds", None),
        "final_fds": getattr(soak, "final_fds", None), "fd_settle_s": getattr(soak, "settle_s", None),
        "baseline_rss_kib": getattr(soak, "baseline_rss_kib", None),
        "final_rss_kib": getattr(soak, "final_rss_kib", None),
        "server_cpu_s": soak.samples[-1]["cpu_s"] if soak.samples else None,
        "flatness": flat, "samples": soak.samples,
    }
    ok = (soak.failures == 0 and not soak.server_gone and flat["flat"] and not soak.interrupted)
    r["pass"] = ok
    if args.report:
        with open(args.report, "w") as f:
            json.dump(r, f, indent=1)

    mib = lambda kib: "-" if kib is None else f"{kib / 1024:.1f}"
    out = [f"== {args.variant}: rill echo pid {args.server_pid} at {args.address}, "
           f"{r['duration_s']} s, seed {args.seed}" + (" (INTERRUPTED)" if soak.interrupted else "")]
    out.append("  answers verified: " + ", ".join(
        f"{k} {soak.verified[k]} ({soak.verified_bytes[k] / 2**20:.1f} MiB)" for k in VERIFIED_KINDS)
        + f", probe {soak.probe_count}; failures: {soak.failures}")
    for m in soak.failure_messages[:5]:
        out.append(f"    {m}")
    for name, h in (("probe (a short line every 20 ms)", probe_lat),
                    ("load clients (includes their own event loop's delays)", lat)):
        out.append(f"  good-client latency, {name}, n={h.count}: p50 {ms(h.percentile(50))}, "
                   f"p90 {ms(h.percentile(90))}, p99 {ms(h.percentile(99))}, "
                   f"p99.9 {ms(h.percentile(99.9))}, max {ms(h.max if h.count else None)}")
    out.append("  connections (closed by the server): " + ", ".join(
        f"{k} {t.connections} ({t.closed_by_server})" for k, t in soak.tally.items()))
    if flat["judged"]:
        out.append(
            f"  server RSS MiB: baseline {mib(r['baseline_rss_kib'])}, after warm-up "
            f"({warmup:.0f} s) min {mib(flat['rss_min_kib'])}, max {mib(flat['rss_first_half_max_kib'])}"
            f" (1st half) / {mib(flat['rss_second_half_max_kib'])} (2nd half, allowed "
            f"+{mib(flat['rss_allowed_growth_kib'])}), trend {flat['rss_trend_mib_per_min']:+.3f} "
            f"MiB/min, after the clients left {mib(r['final_rss_kib'])} -> "
            f"{'flat' if flat['rss_flat'] else 'GROWS'}")
        out.append(
            f"  server fds: baseline {r['baseline_fds']}, max {flat['fds_first_half_max']} (1st half)"
            f" / {flat['fds_second_half_max']} (2nd half, allowed +{args.fd_tolerance}), after the "
            f"clients left {r['final_fds']} (in {r['fd_settle_s']} s) -> "
            f"{'flat' if flat['fds_flat'] else 'GROWS'}")
    else:
        out.append(f"  server RSS/fds: not judged ({flat['why']}); fds after the clients left "
                   f"{r['final_fds']} (baseline {r['baseline_fds']})")
    if r["server_cpu_s"] is not None:
        out.append(f"  server CPU: {r['server_cpu_s']:.1f} s; {len(soak.samples)} samples")
    out.append(f"  verdict: {'PASS' if ok else 'FAIL'}")
    print("\n".join(out), flush=True)
    return ok


def duration_seconds(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600}
    for u in sorted(units, key=len, reverse=True):
        if text.endswith(u):
            return float(text[:-len(u)]) * units[u]
    return float(text)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", required=True, help="the server's HOST:PORT (loopback)")
    p.add_argument("--server-pid", type=int, required=True, help="sampled in /proc")
    p.add_argument("--variant", default="plain",
                   help="'plain' (no transcoder) or the server's --transcoder CODEC[,EOL[,ERRORS]]")
    p.add_argument("--duration", type=duration_seconds, default=600.0, help="e.g. 90, 90s, 10m")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every kind's population")
    p.add_argument("--kinds", type=lambda t: t.split(","), default=None,
                   help="only these kinds of clients (comma-separated; the probe always runs): "
                        + ",".join(POPULATION))
    p.add_argument("--warmup-fraction", type=float, default=0.2)
    p.add_argument("--warmup-min-s", type=float, default=10.0)
    p.add_argument("--rss-tolerance-percent", type=float, default=10.0)
    p.add_argument("--rss-tolerance-mib", type=float, default=4.0)
    p.add_argument("--fd-tolerance", type=int, default=8)
    p.add_argument("--report", help="write the summary and every sample here as JSON")
    args = p.parse_args()
    for k in args.kinds or []:
        if k not in POPULATION:
            p.error(f"--kinds: no client kind {k!r} (one of {', '.join(POPULATION)})")
    host = args.address.rsplit(":", 1)[0].strip("[]")
    if not (host.startswith("127.") or host in ("::1", "localhost")):
        raise SystemExit(f"soak_clients: loopback addresses only, got {args.address}")
    soak = Soak(args)
    asyncio.run(soak.main())
    ok = report(soak, args)
    sys.exit(0 if ok else (130 if soak.interrupted else 1))


if __name__ == "__main__":
    main()
