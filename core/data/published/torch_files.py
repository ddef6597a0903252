"""Read the tensors of a `torch.save` file without unpickling it.

Some publishers distribute data only as `torch.save` files (MHD's `mhd_train.pt`), and loading
those with `torch.load` or `pickle` runs whatever the file says. Here the file's pickle stream
is parsed by `pickletools.genops` (a disassembler: it executes nothing) and evaluated by a small
stack machine that builds only tuples, lists, dicts, strings, numbers and tensors. A tensor is a
call of `torch._utils._rebuild_tensor_v2` on a storage; its values are memory-mapped from the
file (a view checked against the storage's bounds), so nothing is read until a batch asks. Any
other global becomes an inert `Opaque` value: no module is imported, no function called.

Both of torch's formats are read: the zip archive of torch >= 1.6 (`<name>/data.pkl` and one
member per storage) and the legacy stream (five pickles, then each storage's element count and
bytes).
"""

from __future__ import annotations

import pickletools
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from core.data.dataset import DatasetError

STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}  # fmt: skip
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
REBUILD_TENSOR = ("torch._utils", "_rebuild_tensor_v2")
EMPTY_MAPPING = ("collections", "OrderedDict")  # a tensor's (empty) backward hooks


@dataclass(frozen=True)
class Global:
    """A module-level name the stream refers to (never imported)."""

    module: str
    name: str


@dataclass(frozen=True)
class Opaque:
    """What the reader does not model (an unknown global, or what calling it would return)."""

    what: str


@dataclass(frozen=True)
class StorageRef:
    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class TensorRef:
    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


class _Mark:
    pass


MARK = _Mark()
_PUSH_ARG = {
    "BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG", "BINFLOAT", "FLOAT",
    "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
}  # fmt: skip
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_IGNORED = {"PROTO", "FRAME"}


def _pop_mark(stack: list) -> list:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is MARK:
            items = stack[i + 1 :]
            del stack[i:]
            return items
    raise ValueError("MARK missing")


def _call(func: Any, args: Any) -> Any:
    """What REDUCE builds: a tensor reference, an empty mapping, or an Opaque value."""
    if isinstance(func, Global) and (func.module, func.name) == REBUILD_TENSOR:
        storage, offset, size, stride = args[:4]
        if not isinstance(storage, StorageRef):
            raise ValueError("a tensor without a storage")
        ints = all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride))
        if not ints or len(size) != len(stride):
            raise ValueError("a tensor with a malformed size or stride")
        return TensorRef(storage, offset, tuple(size), tuple(stride))
    if isinstance(func, Global) and (func.module, func.name) == EMPTY_MAPPING and not args:
        return {}
    name = f"{func.module}.{func.name}" if isinstance(func, Global) else repr(func)[:60]
    return Opaque(f"{name}(...)")


def _persistent(pid: Any) -> StorageRef:
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        raise ValueError(f"an unknown persistent reference {str(pid)[:60]}")
    kind, key, numel = pid[1], pid[2], pid[4]
    if not isinstance(kind, Global) or kind.name not in STORAGE_DTYPES:
        raise ValueError(f"storage type {kind} is not read (known: {sorted(STORAGE_DTYPES)})")
    if not isinstance(numel, int) or numel < 0:
        raise ValueError("a storage with a malformed size")
    return StorageRef(str(key), np.dtype(STORAGE_DTYPES[kind.name]), numel)


def evaluate(stream: BinaryIO) -> Any:
    """The value of the next pickle in `stream`, built by the stack machine described above
    (ValueError on an opcode or structure it does not model)."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name in _IGNORED:
            continue
        if name in _PUSH_ARG:
            stack.append(arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name == "MARK":
            stack.append(MARK)
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name == "TUPLE":
            stack.append(tuple(_pop_mark(stack)))
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "LIST":
            stack.append(_pop_mark(stack))
        elif name == "APPEND":
            item = stack.pop()
            stack[-1].append(item)
        elif name == "APPENDS":
            items = _pop_mark(stack)
            stack[-1].extend(items)
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "DICT":
            items = _pop_mark(stack)
            stack.append(dict(zip(items[::2], items[1::2], strict=True)))
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            stack[-1][key] = value
        elif name == "SETITEMS":
            items = _pop_mark(stack)
            stack[-1].update(zip(items[::2], items[1::2], strict=True))
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo[int(arg)])
        elif name == "GLOBAL":
            module, _, attribute = arg.partition(" ")
            stack.append(Global(module, attribute))
        elif name == "STACK_GLOBAL":
            attribute, module = stack.pop(), stack.pop()
            stack.append(Global(str(module), str(attribute)))
        elif name == "BINPERSID":
            stack.append(_persistent(stack.pop()))
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            stack.append(_call(func, args))
        elif name in ("NEWOBJ", "NEWOBJ_EX"):
            if name == "NEWOBJ_EX":
                stack.pop()
            stack.pop()
            cls = stack.pop()
            stack.append(Opaque(f"{getattr(cls, 'name', cls)} instance"))
        elif name == "BUILD":
            stack.pop()  # an object's state: only Opaque values receive one
        elif name == "STOP":
            if len(stack) != 1:
                raise ValueError("the stream ends with a malformed stack")
            return stack[0]
        else:
            raise ValueError(f"pickle opcode {name} is not read")
    raise ValueError("the stream ends before STOP")


def _resolve(value: Any, storages: dict[str, np.ndarray]) -> Any:
    """`value` with each TensorRef replaced by a read-only array viewing its storage."""
    if isinstance(value, TensorRef):
        return _view(value, storages)
    if isinstance(value, tuple):
        return tuple(_resolve(v, storages) for v in value)
    if isinstance(value, list):
        return [_resolve(v, storages) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, storages) for k, v in value.items()}
    return value


def _view(ref: TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    if ref.storage.key not in storages:
        raise ValueError(f"storage {ref.storage.key!r} is missing")
    flat = storages[ref.storage.key]
    if not ref.size:
        if ref.offset >= len(flat):
            raise ValueError("a scalar past its storage's end")
        return np.asarray(flat[ref.offset])
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if 0 not in ref.size and last >= len(flat):
        raise ValueError(f"a tensor of size {list(ref.size)} reads past its storage's end")
    if 0 in ref.size:
        return np.empty(ref.size, dtype=flat.dtype)
    strides = tuple(s * flat.dtype.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset :], shape=ref.size, strides=strides, writeable=False
    )
    return view


def _collect(value: Any, found: dict[str, StorageRef]) -> None:
    if isinstance(value, TensorRef):
        found[value.storage.key] = value.storage
    elif isinstance(value, tuple | list):
        for v in value:
            _collect(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, found)


def _member_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Where an uncompressed zip member's bytes start (after its local header)."""
    with path.open("rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise ValueError(f"{info.filename}: a malformed zip header")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        pickles = [n for n in infos if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError("no single <name>/data.pkl in the archive")
        prefix = pickles[0][: -len("data.pkl")]
        with archive.open(pickles[0]) as stream:
            value = evaluate(stream)
        order = (
            archive.read(prefix + "byteorder").decode()
            if prefix + "byteorder" in infos
            else "little"
        )
    if order not in ("little", "big"):
        raise ValueError(f"byteorder {order!r}")
    found: dict[str, StorageRef] = {}
    _collect(value, found)
    storages = {}
    for key, ref in found.items():
        info = infos.get(f"{prefix}data/{key}")
        if info is None:
            raise ValueError(f"storage {key!r} is missing")
        dtype = ref.dtype.newbyteorder("<" if order == "little" else ">")
        if info.compress_type != zipfile.ZIP_STORED or info.file_size < ref.numel * dtype.itemsize:
            raise ValueError(
                f"storage {key!r} is compressed or shorter than its {ref.numel} values"
            )
        storages[key] = np.memmap(
            path, dtype=dtype, mode="r", offset=_member_offset(path, info), shape=(ref.numel,)
        ) if ref.numel else np.empty(0, dtype)  # fmt: skip
    return _resolve(value, storages)


def _read_legacy(path: Path) -> Any:
    with path.open("rb") as f:
        if evaluate(f) != LEGACY_MAGIC:
            raise ValueError("neither a zip archive nor a legacy torch file")
        evaluate(f)  # protocol version
        evaluate(f)  # system info
        value = evaluate(f)
        keys = evaluate(f)
        found: dict[str, StorageRef] = {}
        _collect(value, found)
        storages, position = {}, f.tell()
        size = path.stat().st_size
        for key in keys if isinstance(keys, list) else []:
            header = f.read(8)
            if len(header) != 8:
                raise ValueError(f"storage {key!r} is missing")
            numel = struct.unpack("<q", header)[0]
            ref = found.get(str(key))
            itemsize = ref.dtype.itemsize if ref is not None else 1
            position += 8
            if numel < 0 or position + numel * itemsize > size:
                raise ValueError(f"storage {key!r} runs past the end of the file")
            if ref is not None:
                storages[str(key)] = np.memmap(
                    path, dtype=ref.dtype.newbyteorder("<"), mode="r", offset=position,
                    shape=(numel,),
                ) if numel else np.empty(0, ref.dtype)  # fmt: skip
            position += numel * itemsize
            f.seek(position)
    return _resolve(value, storages)


def read_torch_file(path: str | Path) -> Any:
    """The tuples, lists, dicts, numbers and tensors (read-only numpy views of the file) that a
    `torch.save` file holds, without unpickling it; DatasetError naming the file otherwise."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_legacy(path)
    except (
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        EOFError,
        RecursionError,
        struct.error,
    ) as error:
        raise DatasetError(f"{path.name}: not a torch file this reader takes ({error})") from None
    except (OSError, zipfile.BadZipFile) as error:
        raise DatasetError(f"{path.name}: unreadable ({error})") from None
