"""A differential oracle for `cea audit artifacts`: the real loaders decide what is malicious.

`Oracle` keeps one throw-away worker process (started once: importing torch is the slow part)
that loads each candidate file with the real loaders — `pickle.load`, `torch.load` with and
without `weights_only`, `torch.jit.load`, `joblib.load`, `numpy.load(allow_pickle=True)` — under a
`sys.addaudithook` hook (a folder is loaded with `AutoConfig.from_pretrained(...,
trust_remote_code=True)`). The hook records what a payload would do (run a command, start a
process, exec or compile source, marshal code, open a socket, write or delete a file outside the
loader's own temporary folders, import a module outside an allowlist, load a shared library) and
*refuses* it by raising, so nothing a generated file asks for actually happens. A worker that
hangs or dies on a file (a loader's own bug) is replaced; that file reports `crashed`.

Used by tests/test_gate_oracle.py (a few examples) and benchmarks/gate_fuzz.py (a campaign).
"""

from __future__ import annotations

import json
import os
import random
import select
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

LOADERS = (
    "pickle.load",
    "torch.load",
    "torch.load(weights_only)",
    "torch.jit.load",
    "joblib.load",
    "numpy.load",
)  # (and for a folder: transformers' from_pretrained with trust_remote_code=True)

_WORKER = r'''
import json, os, sys, resource, tempfile, io
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
import pickle, tarfile, zipfile, gzip, bz2, lzma, zlib, struct, warnings, collections
import numpy, numpy.random, joblib, torch, torch.serialization
warnings.simplefilter("ignore")
BLOCK = {
    "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "exec", "marshal.loads",
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto",
    "urllib.Request", "http.client.connect", "webbrowser.open", "ctypes.dlopen",
    "ctypes.dlsym", "os.remove", "os.rename", "os.rmdir", "shutil.rmtree", "os.truncate",
    "os.link", "os.symlink", "os.chmod", "os.chown", "sys.settrace", "sys.setprofile",
}
ALLOWED_IMPORTS = ("numpy", "torch", "joblib", "collections", "copyreg", "_codecs", "codecs",
                   "encodings", "datetime", "decimal", "fractions", "ipaddress", "uuid",
                   "pathlib", "argparse", "_collections_abc", "__future__", "functools",
                   "transformers", "huggingface_hub", "safetensors", "tokenizers")
state = {"on": False, "events": [], "dirs": []}

def _inside(path):
    try:
        p = os.path.realpath(os.fsdecode(path))
    except Exception:
        return False
    return any(p == d or p.startswith(d + os.sep) for d in state["dirs"])

def _importing():
    f = sys._getframe(2)
    while f is not None:
        if "importlib._bootstrap" in f.f_code.co_filename:
            return True
        f = f.f_back
    return False

def hook(event, args):
    if not state["on"]:
        return
    what = None
    if event in ("marshal.loads", "compile") and _importing():
        return  # (a module imported from its .pyc or source: the "import" event judges it)
    if event in BLOCK:
        if event in ("os.remove", "os.rename", "os.rmdir", "shutil.rmtree", "os.chmod",
                     "os.chown", "os.truncate") and args and _inside(args[0]):
            return  # (the loader extracting into and cleaning up its own temporary folder)
        if event in ("os.remove", "os.rmdir") and len(args) > 1 and args[1] not in (None, -1):
            return  # (shutil.rmtree of the loader's temporary folder, relative to its fd)
        what = f"{event}:{str(args)[:80]}"
    elif event == "os.mkdir" and args:
        state["dirs"].append(os.path.realpath(os.fsdecode(args[0])))
        return
    elif event == "compile":
        caller = sys._getframe(1).f_code
        if caller.co_name == "parse" and caller.co_filename.endswith("ast.py"):
            return  # (ast.parse / ast.literal_eval: a syntax tree, no code object)
        name = args[1] if len(args) > 1 else ""
        if name in ("<string>", "<unknown>", "<ast>") or not str(name).endswith(".py"):
            what = f"compile:{str(name)[:60]}"
    elif event == "open" and args:
        path, mode = args[0], args[1] if len(args) > 1 else "r"
        flags = args[2] if len(args) > 2 else 0
        writes = any(c in str(mode or "") for c in "wax+") or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        )
        if writes and isinstance(path, (str, bytes, os.PathLike)) and not _inside(path):
            what = f"open-for-write:{str(path)[:80]}"
    elif event == "import" and args:
        mod = str(args[0])
        if not any(mod == a or mod.startswith(a + ".") for a in ALLOWED_IMPORTS):
            if state.get("busy"):
                return
            state["busy"] = True
            try:  # (only a module that exists runs code; the top level is found, not imported)
                import importlib.util
                exists = importlib.util.find_spec(mod.split(".")[0]) is not None
            except Exception:
                exists = False
            finally:
                state["busy"] = False
            if exists:
                what = f"import:{mod[:80]}"
    if what is not None:
        state["events"].append(what)
        raise PermissionError(f"oracle refused {what}")

def load(name, path):
    if name == "pickle.load":
        with open(path, "rb") as fh:
            return pickle.load(fh)
    if name == "torch.load":
        return torch.load(path, weights_only=False)
    if name == "torch.load(weights_only)":
        return torch.load(path, weights_only=True)
    if name == "joblib.load":
        return joblib.load(path)
    if name == "numpy.load":
        return numpy.load(path, allow_pickle=True)
    if name == "torch.jit.load":
        return torch.jit.load(path)
    if name == "from_pretrained":  # (a model folder; transformers imported on first use)
        import transformers
        return transformers.AutoConfig.from_pretrained(
            path, trust_remote_code=True, local_files_only=True
        )
    raise ValueError(name)

def warm_up():
    """Each loader once on benign files, before the hook: their lazy imports happen now."""
    d = tempfile.mkdtemp()
    files = []
    for name, save in (
        ("a.pt", lambda p: torch.save({"w": torch.zeros(2)}, p)),
        ("b.pt", lambda p: torch.save({"w": torch.zeros(2)}, p, _use_new_zipfile_serialization=False)),
        ("c.joblib", lambda p: joblib.dump({"a": numpy.arange(3), "o": numpy.array([1, "x"], dtype=object)}, p)),
        ("d.joblib", lambda p: joblib.dump({"a": numpy.arange(3)}, p, compress=3)),
        ("e.npy", lambda p: numpy.save(p, numpy.array([1, "x"], dtype=object), allow_pickle=True)),
        ("f.npz", lambda p: numpy.savez(p, a=numpy.arange(3))),
        ("g.pkl", lambda p: open(p, "wb").write(pickle.dumps([collections.OrderedDict(), numpy.random.default_rng(0)]))),
    ):
        path = os.path.join(d, name)
        save(path)
        files.append(path)
    for path in files:
        for name in ("pickle.load", "torch.load", "torch.load(weights_only)", "joblib.load", "numpy.load"):
            try:
                r = load(name, path)
                if hasattr(r, "close"):
                    r.close()
            except Exception:
                pass

warm_up()
sys.addaudithook(hook)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    out = {}
    loaders = ["from_pretrained"] if os.path.isdir(req["path"]) else req["loaders"]
    if loaders == ["from_pretrained"] and "transformers" not in sys.modules:
        plain = tempfile.mkdtemp()  # (warm-up before the hook: transformers' own imports)
        with open(os.path.join(plain, "config.json"), "w") as fh:
            json.dump({"model_type": "bert"}, fh)
        try:
            load("from_pretrained", plain)
        except Exception:
            pass
    for name in loaders:
        state["events"], state["dirs"] = [], [os.path.realpath(tempfile.gettempdir()) + "/__x"]
        state["on"] = True
        try:
            load(name, req["path"])
            error = ""
        except BaseException as exc:  # a loader refusing the file is fine: what ran before?
            error = f"{type(exc).__name__}: {str(exc)[:80]}"
        finally:
            state["on"] = False
        out[name] = {"events": state["events"][:20], "error": error}
    print(json.dumps(out), flush=True)
'''


@dataclass
class Verdict:
    """What the real loaders did with one file."""

    events: dict[str, list[str]] = field(default_factory=dict)  # loader -> refused events
    errors: dict[str, str] = field(default_factory=dict)
    crashed: bool = False  # a loader hung or killed its process (a loader bug, not an event)

    @property
    def malicious(self) -> bool:
        return any(self.events.values())

    def summary(self) -> str:
        return "; ".join(f"{k}: {', '.join(v[:3])}" for k, v in self.events.items() if v)


class Oracle:
    """One worker process, reused across files; replaced when a loader hangs or kills it."""

    def __init__(self, timeout: float = 30.0, loaders: tuple[str, ...] = LOADERS) -> None:
        self.timeout = timeout
        self.loaders = loaders
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        import tempfile

        self.scratch = tempfile.mkdtemp(prefix="cea-oracle-")  # (transformers' module cache)
        env = {
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1",
            "HF_MODULES_CACHE": self.scratch,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        line = self._line(proc, 300.0)
        if line is None or not json.loads(line).get("ready"):
            self._kill(proc)
            raise RuntimeError("the oracle worker did not start")
        return proc

    @staticmethod
    def _line(proc: subprocess.Popen[str], timeout: float) -> str | None:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = proc.stdout.readline()
        return line or None

    @staticmethod
    def _kill(proc: subprocess.Popen[str]) -> None:
        proc.kill()
        proc.wait()

    def check(self, path: Path) -> Verdict:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin is not None
        request = {"path": str(path), "loaders": list(self.loaders)}
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self._line(self.proc, self.timeout)
        except (BrokenPipeError, OSError):
            line = None
        if line is None:  # hung or died: that loader has a bug on this file; start afresh
            self._kill(self.proc)
            self.proc = None
            return Verdict(crashed=True)
        out = json.loads(line)
        return Verdict(
            events={k: v["events"] for k, v in out.items()},
            errors={k: v["error"] for k, v in out.items()},
        )

    def close(self) -> None:
        import shutil

        if self.proc is not None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self._kill(self.proc)
            self.proc = None
        if getattr(self, "scratch", None):
            shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- file shapes: what generated candidates look like -----------------------------------------


def _evil_payloads(marker: str) -> list[bytes]:
    """Pickles that make a loader do something the oracle refuses (each harmless even if it
    ran: the hook refuses it first)."""
    import pickle

    touch = f"touch {marker}"
    inner = b"cos\nsystem\n(S'" + touch.encode() + b"'\ntR."
    return [
        b"cos\nsystem\n(S'" + touch.encode() + b"'\ntR.",
        b"\x80\x02cposix\nsystem\nX"
        + len(touch).to_bytes(4, "little")
        + touch.encode()
        + b"\x85R.",
        b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x8c\x04exec\x93\x8c\x03x=1\x85R.",
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"csubprocess\nPopen\n((S'true'\nltR.",
        b"cuuid\n_get_command_stdout\n(S'true'\ntR.",
        b"cbuiltins\nopen\n(S'" + marker.encode() + b"'\nS'w'\ntR.",
        b"\x80\x02ctorch.storage\n_load_from_bytes\nC" + bytes([len(inner)]) + inner + b"\x85R.",
        pickle.dumps([1])[:-1] + b"0" + inner,  # (STOP replaced: one stream)
    ]


def _benign_payloads() -> list[bytes]:
    import collections
    import io
    import pickle

    import numpy as np

    return [
        pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True)}, protocol=2),
        pickle.dumps(collections.OrderedDict(w=np.arange(4.0)), protocol=4),
        pickle.dumps([np.random.RandomState(0), np.random.default_rng(1)], protocol=5),
        pickle.dumps({"s": {1, 2}, "f": frozenset("ab")}, protocol=2),
        io.BytesIO(b"N.").getvalue(),
    ]


def _zip(members: dict[str, bytes], method: int = 0) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _compress(kind: str, data: bytes, split: int) -> bytes:
    import bz2
    import gzip
    import lzma
    import zlib

    parts = [data[:split], data[split:]] if 0 < split < len(data) else [data]
    one = {
        "zlib": zlib.compress,
        "gzip": gzip.compress,
        "bz2": bz2.compress,
        "xz": lzma.compress,
        "lzma": lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE),
    }[kind]
    if kind == "zlib":  # (joblib's zlib reader loops on a second stream: one stream only)
        parts = [data]
    return b"".join(one(p) for p in parts)


def _npy_object(payload: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload


def _legacy_tar(payload: bytes, where: str) -> bytes:
    import pickle
    import struct

    import torch

    views = payload if where == "views" else pickle.dumps([], protocol=2)
    storages = (
        pickle.dumps(1, protocol=2)
        + pickle.dumps(("0", "cpu", torch.FloatStorage), protocol=2)
        + struct.pack("<q", 2)
        + struct.pack("<2f", 1.0, 2.0)
        + views
    )
    last = payload if where == "pickle" else pickle.dumps({"step": 1}, protocol=2)
    return _tar(
        [("storages", storages), ("tensors", pickle.dumps(0, protocol=2)), ("pickle", last)]
    )


WRAPPERS = (
    "raw",
    "torch-zip",
    "torch-zip-renamed",
    "compressed",
    "npy-object",
    "legacy-tar",
    "after-benign-stream",
    "zip-appended",
    "starts-like-safetensors",
    "tar-first-member-named-like-zip",
    "zip-member-any-name",
    "joblib-array-bytes",
    "framed",
    "npz-member",
)


def _joblib_array(payload: bytes) -> bytes:
    """A joblib stream whose uint8 array bytes are `payload`: joblib.load skips them as data,
    pickle.load / torch.load read them as opcodes."""
    n = len(payload) & 0xFF
    payload = payload[:n]
    head = (
        b"\x80\x04}\x8c\x01a"
        b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81"
        b"}(\x8c\x05shapeK" + bytes([n]) + b"\x85"
        b"\x8c\x05order\x8c\x01C"
        b"\x8c\x05dtypecnumpy\ndtype\n\x8c\x02u1\x89\x88\x87R"
        b"(K\x03\x8c\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        b"\x8c\x08subclasscnumpy\nndarray\n"
        b"\x8c\x0aallow_mmap\x88ub"
    )
    return head + payload + b"s."


def _framed(payload: bytes, cut: int) -> bytes:
    """Protocol 4 with a FRAME whose length ends `cut` bytes into the payload (the C and the
    Python unpicklers then read different streams)."""
    body = payload[2:] if payload[:1] == b"\x80" else payload
    cut = max(1, min(cut, len(body)))
    return b"\x80\x04\x95" + cut.to_bytes(8, "little") + body


def generate(rng: random.Random, marker: str) -> tuple[str, bytes, str]:
    """(file name, bytes, description) of one candidate: a payload (malicious or benign),
    wrapped in one or two container shapes, maybe mutated."""
    import pickle

    evil = rng.random() < 0.6
    pool = _evil_payloads(marker) if evil else _benign_payloads()
    idx = rng.randrange(len(pool))
    data = pool[idx]
    steps = [f"{'evil' if evil else 'benign'}[{idx}]"]
    name = "model.bin"
    for _ in range(rng.choice((1, 1, 2))):
        w = rng.choice(WRAPPERS)
        steps.append(w)
        if w == "torch-zip":
            data = _zip({"archive/data.pkl": data, "archive/version": b"3\n"})
            name = "model.pt"
        elif w == "torch-zip-renamed":
            top = rng.choice(("archive", "x", "model"))
            data = _zip(
                {f"{top}/data.pkl": data, f"{top}/byteorder": b"little"}, rng.choice((0, 8))
            )
            name = "model.pt"
        elif w == "compressed":
            kind = rng.choice(("zlib", "gzip", "bz2", "xz", "lzma"))
            data = _compress(kind, data, rng.randrange(len(data) + 1))
            steps[-1] += f":{kind}"
            name = "model.joblib"
        elif w == "npy-object":
            data = _npy_object(data)
            name = "array.npy"
        elif w == "legacy-tar":
            data = _legacy_tar(data, rng.choice(("views", "pickle")))
            name = "old.pt"
        elif w == "after-benign-stream":
            data = pickle.dumps(1, protocol=2) + data
        elif w == "zip-appended":
            data = data + _zip({"a.pkl": pickle.dumps([1], protocol=2)})
        elif w == "starts-like-safetensors":
            data = b"(S'aaaaa{'\n0" + data
            name = "model.safetensors"
        elif w == "tar-first-member-named-like-zip":
            data = _tar([("PK\x03\x04x", b"hi"), ("data.pkl", data)])
            name = "model.tar"
        elif w == "joblib-array-bytes":
            tail = data[:-1] + b"0" if data.endswith(b".") else data  # (POP, not STOP)
            data = _joblib_array(tail if len(tail) < 256 else tail[:255])
            name = "model.joblib"
        elif w == "framed":
            data = _framed(data, rng.randrange(1, len(data) + 1))
        elif w == "npz-member":
            header = "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }"
            header += " " * (63 - (10 + len(header)) % 64) + "\n"
            npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
            data = _zip({"a.npy": npy + bytes(8), rng.choice(("b.npy", "b", "b.pkl")): data})
            name = "arrays.npz"
        elif w == "zip-member-any-name":
            data = _zip({rng.choice(("weights.txt", "config.json", "x")): data})
            name = "bundle.zip"
    if rng.random() < 0.25 and data:
        at = rng.randrange(len(data))
        how = rng.choice(("byte", "cut", "insert"))
        steps.append(f"mutate:{how}@{at}")
        if how == "byte":
            data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
        elif how == "cut":
            data = data[:at]
        else:
            data = (
                data[:at]
                + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
                + data[at:]
            )
    return name, data, " > ".join(steps)


def cea_exit_code(path: Path) -> int:
    """`cea audit artifacts PATH` as a subprocess would see it, run in-process (main())."""
    import contextlib
    import io

    from cea.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(["audit", "artifacts", str(path), "--json"])
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 1
    return 0
