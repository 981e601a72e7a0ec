"""Which nearest-bank-entry search suits the CPU a model is trained on (PatchCore's ``search="auto"``)."""

from __future__ import annotations

SEARCH_MODES = ("auto", "int8", "pca", "exact")  # PatchCore's ``search`` parameter

# CPU features with 8-bit dot products that ONNX Runtime's integer kernels use: x86 VNNI (AVX-512 or AVX) or AMX,
# Arm's dot product. Named as /proc/cpuinfo names them (torch's cpuinfo uses the same x86 names, and ``dot`` for Arm's),
# or as numpy's dispatch table does (upper case, and without AVX-VNNI: the last resort)
_DOT8_LINUX = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
_DOT8_TORCH = ("dot",)
_DOT8_NUMPY = ("AVX512VNNI", "ASIMDDP")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """This CPU's feature names: ``cpuinfo``'s first ``flags`` (x86) or ``Features`` (Arm) line, lower case; where
    there is no such file (Windows, macOS), torch's CPU capabilities (the cpuinfo library, which reads the CPU itself
    and knows AVX-VNNI and AMX), else numpy's runtime dispatch table (its names upper case; it has no AVX-VNNI, so an
    Alder Lake PC without torch reads as a CPU without 8-bit dot products)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features"):
                    return set(value.lower().split())
    except OSError:
        pass
    caps = _torch_capabilities()
    if caps:
        return {k for k, v in caps.items() if v is True}
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # pragma: no cover - numpy moved it
        return set()
    return {k for k, v in __cpu_features__.items() if v}


def _torch_capabilities() -> dict | None:
    """torch's ``torch.cpu.get_capabilities()`` (the pinned torch has it), or None without torch or that function."""
    try:
        import torch.cpu

        return dict(torch.cpu.get_capabilities())
    except (ImportError, OSError, AttributeError, RuntimeError):  # OSError: a torch whose DLLs fail to load (Windows)
        return None


def resolve_search(mode: str, flags: set[str] | None = None) -> tuple[str, str | None]:
    """(the search to run, why) for a ``search`` parameter: ``auto`` becomes ``int8`` on a CPU with 8-bit dot-product
    instructions, where ONNX Runtime's 8-bit product is the fastest (1,331 patches x 176 dims x 2,048 entries: 1.7 ms
    against 5.0 in float32 on an AVX-512 VNNI Xeon), and ``pca`` on one without, where the 8-bit product is hardly
    faster than float32 and the product along the bank's principal axes takes half as long (27.5 and 12.8 ms on an
    AVX2 EPYC; docs/benchmarks.md). Other modes stay as they are (why: None)."""
    if mode != "auto":
        return mode, None
    flags = cpu_flags() if flags is None else flags
    found = sorted({f for f in flags if f in _DOT8_LINUX or f in _DOT8_TORCH or f in _DOT8_NUMPY})
    if found:
        return "int8", f"this CPU has 8-bit dot products ({', '.join(found)}): the 8-bit product is the fastest"
    return "pca", (
        "this CPU has no 8-bit dot products (VNNI, AMX or Arm's dot product): the product along the bank's principal "
        "axes is the fastest"
    )


def search_hint(search: str | None, flags: set[str] | None = None) -> str | None:
    """A line for a user scoring a model whose bank search is not this CPU's fastest (a model trained on another kind
    of machine, or saved before the faster searches), saying how to re-export it; None when it is. ``search``: the
    model's (None: saved before the searches existed, so exact)."""
    search = search or "exact"
    best, _ = resolve_search("auto", flags)
    if search == best:
        return None
    if search == "exact":
        why = "searches its memory bank in float32"
    elif best == "pca":
        why = "searches its bank in 8 bits, which this CPU has no fast instructions for (no VNNI)"
    else:
        why = "searches its bank along principal axes, while this CPU has fast 8-bit instructions (VNNI)"
    return f"this model {why}: `linewatch export MODEL --search {best}` makes it faster here"
