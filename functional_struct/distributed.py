"""Past one machine: sharded ensembles and data-parallel training with ``torch.distributed``.

Raw trees are plain tensors, so scale-out needs no communication layer of its own: this module
is a handful of helpers around ``torch.distributed`` and ``torch.distributed.checkpoint`` (DCP).

- **Sharded ensembles.** :func:`shard` / :func:`local_members` give each rank a contiguous block
  of the ensemble axis; :func:`init_members` draws member ``i`` from a generator seeded by
  :func:`member_seed` ``(seed, i)`` only, so the ensemble is the same on any world size; each rank
  trains its block with one ``vmap(grad)`` and no communication (members are independent);
  :func:`gather_members` assembles the whole ensemble (raw or structured) on every rank.
- **Checkpoints.** :func:`save` writes one DCP key per member, so :func:`load` reads any subset
  of members: a checkpoint written by ``W`` processes loads on any other world size. A save
  goes to ``<path>.partial`` and is renamed to ``<path>`` when complete, so a process that dies
  mid-save never leaves a half-written ``<path>``.
- **Data-parallel training of one model.** Either ``DistributedDataParallel`` on a
  :class:`StructuredModule` (a module whose parameters are the raw tree; its forward calls
  ``tree.apply`` and ``functional_call``), or functional training with
  :func:`all_reduce_mean` on the gradients of the raw tree.
- **Launching.** ``torchrun`` for real jobs; :func:`run_local` starts a few gloo processes on
  this machine (tests, examples, benchmarks).

This module is not imported by ``import functional_struct``; import it as
``from functional_struct import distributed``.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import shutil
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import optree
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.func import functional_call

from ._tree import StructureTree

__all__ = [
    "StructuredModule",
    "all_reduce_mean",
    "gather_members",
    "init_members",
    "load",
    "local_members",
    "member_generator",
    "member_seed",
    "run_local",
    "save",
    "shard",
]

_NS = "torch"


def _int(value: Any, name: str, where: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{where}: {name} must be an int, got {type(value).__name__}: {value!r}.")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be an int >= {minimum}, got {value}.")
    return value


def _group_shape(group: Any) -> tuple[int, int]:
    """``(world_size, rank)`` of ``group``, or ``(1, 0)`` without a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1, 0
    return dist.get_world_size(group), dist.get_rank(group)


def _flatten(tree: Any) -> tuple[list[tuple[Any, ...]], list[Any], Any]:
    return optree.tree_flatten_with_path(tree, none_is_leaf=True, namespace=_NS)


def _path_name(path: tuple[Any, ...]) -> str:
    return "/".join(str(p) for p in path) if path else "<root>"


def _tensors(tree: Any, where: str, what: str) -> tuple[list[str], list[Tensor], Any]:
    paths, leaves, spec = _flatten(tree)
    names = [_path_name(p) for p in paths]
    for name, leaf in zip(names, leaves, strict=True):
        if not isinstance(leaf, Tensor):
            raise TypeError(
                f"{where}: every leaf of {what} must be a tensor, got {type(leaf).__name__} "
                f"at {name!r}."
            )
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: {what} has two leaves with the same path name: {names}.")
    return names, leaves, spec


def _by_path(names: list[str]) -> list[int]:
    """Leaf indices in the order of their path names: the order every rank communicates in.

    Flattening order is not enough: optree flattens the dicts of the "torch" namespace by
    sorted key until ``torch.utils._cxx_pytree`` is imported (``torch.func.grad`` does it on
    first use), by insertion order after, so two ranks can flatten one tree differently.
    """
    return sorted(range(len(names)), key=names.__getitem__)


def _members_leading(names: list[str], leaves: list[Tensor], count: int, where: str) -> None:
    for name, leaf in zip(names, leaves, strict=True):
        if leaf.dim() == 0 or leaf.shape[0] != count:
            raise ValueError(
                f"{where}: every leaf needs a leading member dim of size {count} (one entry per "
                f"local member), got shape {tuple(leaf.shape)} at {name!r}."
            )


# ------------------------------------------------------------------------------------ sharding
def shard(size: int, world_size: int, rank: int) -> range:
    """The members of an ensemble of ``size`` that rank ``rank`` of ``world_size`` holds.

    Contiguous blocks in rank order; the first ``size % world_size`` ranks hold one member more.
    Concatenating the blocks of ranks ``0 .. world_size - 1`` gives ``range(size)``.

    Args:
      size: the number of members (the ensemble axis).
      world_size: the number of processes.
      rank: this process's rank, ``0 <= rank < world_size``.

    Returns:
      A ``range`` of member indices (empty when there are more ranks than members).

    Example:
      >>> [shard(5, 2, r) for r in range(2)]
      [range(0, 3), range(3, 5)]
      >>> shard(2, 3, 2)
      range(2, 2)
    """
    where = "fs.distributed.shard"
    size = _int(size, "size", where)
    world_size = _int(world_size, "world_size", where, 1)
    rank = _int(rank, "rank", where)
    if rank >= world_size:
        raise ValueError(f"{where}: rank must be < world_size = {world_size}, got {rank}.")
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def local_members(size: int, group: Any = None) -> range:
    """This process's block of an ensemble of ``size``: :func:`shard` for its group and rank.

    Without an initialized process group it is ``range(size)`` (one process holds everything).

    Args:
      size: the number of members.
      group: the process group (default: the world).

    Returns:
      A ``range`` of member indices.

    Example:
      >>> local_members(4)  # no process group: all of them
      range(0, 4)
    """
    world_size, rank = _group_shape(group)
    return shard(size, world_size, rank)


# ---------------------------------------------------------------------------- initialization
def member_seed(seed: int, index: int, leaf: str = "") -> int:
    """The seed of member ``index`` (and of one of its leaves) of an ensemble drawn with ``seed``.

    The first 8 bytes of the SHA-256 digest of the ASCII text ``f"{seed}:{index}"`` (with a
    ``leaf``: ``f"{seed}:{index}:{leaf}"``), read as a little-endian integer, with the top bit
    cleared: a 63-bit seed for ``torch.Generator.manual_seed``, a function of its arguments
    only. Nearby seeds and indices give unrelated streams.

    Args:
      seed: the ensemble's seed, an int >= 0.
      index: the member's index, an int >= 0.
      leaf: a leaf's path in the parameter tree (``"0.weight"``; nested keys joined by ``/``),
        or ``""`` for the member as a whole.

    Returns:
      An int in ``[0, 2**63)``.

    Example:
      >>> member_seed(0, 0) == member_seed(0, 0) != member_seed(0, 1)
      True
      >>> member_seed(0, 0), member_seed(0, 0, "weight")
      (4690615940414861996, 4663609752672548957)
    """
    where = "fs.distributed.member_seed"
    seed = _int(seed, "seed", where)
    index = _int(index, "index", where)
    if not isinstance(leaf, str):
        raise TypeError(f"{where}: leaf must be a str, got {type(leaf).__name__}: {leaf!r}.")
    text = f"{seed}:{index}:{leaf}" if leaf else f"{seed}:{index}"
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def member_generator(seed: int, index: int, leaf: str = "", device: Any = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`member_seed` ``(seed, index, leaf)``.

    Args:
      seed: the ensemble's seed.
      index: the member's index.
      leaf: a leaf's path, or ``""`` for the member as a whole (its data, say).
      device: the generator's device (draws on CPU and on CUDA differ: compare runs on one
        device type).

    Returns:
      A freshly seeded generator.

    Example:
      >>> a = torch.randn(3, generator=member_generator(0, 7))
      >>> torch.equal(a, torch.randn(3, generator=member_generator(0, 7)))
      True
    """
    return torch.Generator(device=device).manual_seed(member_seed(seed, index, leaf))


def init_members(tree: StructureTree, like: Any, seed: int, members: Sequence[int]) -> Any:
    """The raws of the given members, stacked on a new leading dim; member ``i`` from ``(seed, i)``.

    Each structured leaf of each member is ``structure.init_like(leaf, generator=
    member_generator(seed, i, path))`` for the structure that ``tree.resolve(like)`` gives it,
    and every other tensor leaf is a copy of ``like``'s, as ``tree.init`` does. One generator
    per member and leaf makes the raw a function of ``seed``, ``i`` and the leaf's path only:
    never of the other members drawn, nor of the order in which the leaves are visited. So the
    blocks of any world size concatenate to the single-process ensemble, bit for bit (on one
    device type).

    Args:
      tree: the structure tree (``fs.structure(spec)``).
      like: a pytree of tensors giving each leaf's structured shape, dtype and device (as for
        ``tree.init``), such as ``dict(model.named_parameters())``.
      seed: the ensemble's seed, an int >= 0.
      members: the member indices to draw, such as ``local_members(size)``.

    Returns:
      A raw pytree whose leaves have a leading dim of ``len(members)``.

    Example:
      >>> import functional_struct as fs
      >>> tree = fs.structure({"weight": fs.Orthogonal()})
      >>> like = dict(torch.nn.Linear(3, 3).named_parameters())
      >>> whole = init_members(tree, like, seed=0, members=range(5))
      >>> parts = [init_members(tree, like, 0, shard(5, 2, r)) for r in range(2)]
      >>> torch.equal(whole["weight"], torch.cat([p["weight"] for p in parts]))
      True
      >>> {k: tuple(v.shape) for k, v in whole.items()}
      {'weight': (5, 3, 3), 'bias': (5, 3)}
    """
    where = "fs.distributed.init_members"
    if not isinstance(tree, StructureTree):
        raise TypeError(
            f"{where}: tree must be a structure tree (fs.structure(spec)), got "
            f"{type(tree).__name__}."
        )
    _int(seed, "seed", where)
    if isinstance(members, (str, bytes)) or not isinstance(members, Sequence):
        raise TypeError(
            f"{where}: members must be a sequence of ints (a range), got {type(members).__name__}."
        )
    indices = [_int(i, "each member index", where) for i in members]
    names, leaves, spec = _tensors(like, where, "like")
    governing = spec.flatten_up_to(tree.resolve(like))
    if not indices:
        return tree.init(like, batch_shape=(0,))

    def draw(i: int) -> list[Any]:
        return [
            leaf.detach().clone()
            if structure is None
            else structure.init_like(
                leaf.detach(), generator=member_generator(seed, i, name, leaf.device)
            )
            for name, leaf, structure in zip(names, leaves, governing, strict=True)
        ]

    draws = [optree.tree_unflatten(spec, draw(i)) for i in indices]
    return optree.tree_map(lambda *xs: torch.stack(xs), *draws, none_is_leaf=True, namespace=_NS)


# ----------------------------------------------------------------------------- communication
def gather_members(tree: Any, size: int, group: Any = None) -> Any:
    """The whole ensemble on every rank, from each rank's block (raw or structured trees).

    Every leaf of ``tree`` holds this rank's members on its leading dim (``len(shard(size, W,
    rank))`` entries); the result holds all ``size`` members in order. Blocks may be uneven:
    each is padded to the largest block for one ``all_gather`` per leaf, then trimmed.

    Args:
      tree: a pytree of tensors, this rank's block (a raw, a structured tree, losses).
      size: the number of members in the whole ensemble.
      group: the process group (default: the world).

    Returns:
      A pytree like ``tree`` whose leaves have a leading dim of ``size`` (without a process
      group, copies of the leaves).

    Example:
      >>> gather_members({"loss": torch.arange(3.0)}, size=3)  # one process: a copy
      {'loss': tensor([0., 1., 2.])}
    """
    where = "fs.distributed.gather_members"
    size = _int(size, "size", where)
    world_size, rank = _group_shape(group)
    names, leaves, spec = _tensors(tree, where, "tree")
    _members_leading(names, leaves, len(shard(size, world_size, rank)), where)
    if world_size == 1:
        return optree.tree_unflatten(spec, [leaf.clone() for leaf in leaves])
    blocks = [shard(size, world_size, r) for r in range(world_size)]
    longest = max(len(b) for b in blocks)
    out: list[Tensor | None] = [None] * len(leaves)
    for i in _by_path(names):
        leaf = leaves[i]
        padded = leaf.new_zeros((longest, *leaf.shape[1:]))
        padded[: leaf.shape[0]] = leaf
        parts = [torch.empty_like(padded) for _ in range(world_size)]
        dist.all_gather(parts, padded.contiguous(), group=group)
        out[i] = torch.cat([p[: len(b)] for p, b in zip(parts, blocks, strict=True)])
    return optree.tree_unflatten(spec, out)


def all_reduce_mean(tree: Any, group: Any = None) -> Any:
    """The mean over ranks of every leaf (gradients of a raw tree, say), identical on every rank.

    The leaves of one dtype travel as one flat buffer in one ``all_reduce``, in the order of
    their paths (so dicts built in different orders on different ranks still match); the
    result is a new tree (the inputs are not modified). With equal shards per rank, the mean of
    the ranks' mean losses is the full batch's mean loss, so the averaged gradient is the
    full-batch gradient.

    Args:
      tree: a pytree of floating-point tensors, of the same shapes on every rank.
      group: the process group (default: the world).

    Returns:
      A pytree like ``tree`` (without a process group, copies of the leaves).

    Example:
      >>> all_reduce_mean({"weight": torch.ones(2)})  # one process: a copy
      {'weight': tensor([1., 1.])}
    """
    where = "fs.distributed.all_reduce_mean"
    names, leaves, spec = _tensors(tree, where, "tree")
    for name, leaf in zip(names, leaves, strict=True):
        if not (leaf.is_floating_point() or leaf.is_complex()):
            raise TypeError(
                f"{where}: every leaf must be a floating-point tensor (a mean of integers is "
                f"not one), got {leaf.dtype} at {name!r}."
            )
    world_size, _ = _group_shape(group)
    if world_size == 1:
        return optree.tree_unflatten(spec, [leaf.clone() for leaf in leaves])
    out: list[Tensor | None] = [None] * len(leaves)
    by_kind: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    for i in _by_path(names):
        by_kind.setdefault((leaves[i].dtype, leaves[i].device), []).append(i)
    for indices in by_kind.values():
        flat = torch.cat([leaves[i].reshape(-1) for i in indices])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        flat = flat / world_size
        for i, piece in zip(indices, flat.split([leaves[i].numel() for i in indices]), strict=True):
            out[i] = piece.view(leaves[i].shape)
    return optree.tree_unflatten(spec, out)


# ------------------------------------------------------------------------------- checkpoints
@contextlib.contextmanager
def _single_process() -> Iterator[None]:
    """DCP warns when it runs without a process group; here that is the intended mode."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="torch.distributed is disabled, unavailable or uninitialized",
            category=UserWarning,
        )
        yield


def _state_dict(
    tree: Any, members: Sequence[int], shared: Any, where: str, clone: bool
) -> tuple[dict[str, Tensor], Callable[[dict[str, Tensor]], tuple[Any, Any]]]:
    """The DCP state dict and the function that rebuilds ``(tree, shared)`` from it.

    Keys are ``member<i>/<leaf path>`` for each member's slice and ``shared/<leaf path>``.
    """
    indices = [_int(i, "each member index", where) for i in members]
    if len(set(indices)) != len(indices):
        raise ValueError(f"{where}: members must be distinct, got {list(members)}.")
    names, leaves, spec = _tensors(tree, where, "the member tree")
    _members_leading(names, leaves, len(indices), where)
    state: dict[str, Tensor] = {}
    for name, leaf in zip(names, leaves, strict=True):
        for j, i in enumerate(indices):
            part = leaf[j]
            state[f"member{i}/{name}"] = part.clone() if clone else torch.empty_like(part)
    shared_names: list[str] = []
    shared_spec = None
    if shared is not None:
        shared_names, shared_leaves, shared_spec = _tensors(shared, where, "shared")
        for name, leaf in zip(shared_names, shared_leaves, strict=True):
            state[f"shared/{name}"] = leaf.clone() if clone else torch.empty_like(leaf)

    def rebuild(loaded: dict[str, Tensor]) -> tuple[Any, Any]:
        out = []
        for name, leaf in zip(names, leaves, strict=True):
            parts = [loaded[f"member{i}/{name}"] for i in indices]
            out.append(torch.stack(parts) if parts else torch.empty_like(leaf))
        rebuilt_shared = None
        if shared_spec is not None:
            rebuilt_shared = optree.tree_unflatten(
                shared_spec, [loaded[f"shared/{name}"] for name in shared_names]
            )
        return optree.tree_unflatten(spec, out), rebuilt_shared

    return state, rebuild


def save(
    path: str | os.PathLike[str],
    tree: Any,
    members: Sequence[int],
    *,
    shared: Any = None,
    group: Any = None,
) -> Path:
    """Write this rank's members (and state every rank shares) as one checkpoint, atomically.

    Collective: every rank of ``group`` calls it with the same ``path``. Each member's slice of
    each leaf is its own DCP key (``member<i>/<leaf path>``), so :func:`load` can read any
    subset of members on any world size. ``torch.distributed.checkpoint`` writes the data files
    first and its ``.metadata`` last, but into the directory it is given, so an interrupted
    overwrite would mix two checkpoints; here the checkpoint is written to ``<path>.partial``
    (removed first if a crashed save left one) and renamed to ``path`` by rank 0 once DCP has
    finished on every rank. A process that dies mid-save leaves ``<path>.partial`` and no
    ``path``: the previous checkpoint is untouched. Use a new ``path`` per checkpoint (a step
    number in the name). The file system must be shared by all ranks (one machine, or NFS).

    Args:
      path: the checkpoint directory to create; it must not exist.
      tree: a pytree of tensors whose leaves hold this rank's members on their leading dim (a
        raw tree, optimizer moments).
      members: this rank's member indices, in the order of the leading dim.
      shared: an optional pytree of tensors with the same values on every rank (a step count,
        the state of a data-parallel model); saved once.
      group: the process group (default: the world; without one, a single-process save).

    Returns:
      ``path`` as a ``Path``.

    Example:
      >>> import tempfile
      >>> tree = {"w": torch.arange(6.0).reshape(3, 2)}
      >>> like, step = {"w": torch.zeros(2, 2)}, {"step": torch.tensor(0)}
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     out = save(folder + "/step_1", tree, range(3), shared={"step": torch.tensor(1)})
      ...     back, shared = load(out, like, [2, 0], shared=step)
      >>> back["w"], shared["step"]
      (tensor([[4., 5.],
              [0., 1.]]), tensor(1))
    """
    import torch.distributed.checkpoint as dcp

    where = "fs.distributed.save"
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: path must be a str or path, got {type(path).__name__}.")
    target = Path(path)
    if target.exists():
        raise ValueError(
            f"{where}: {str(target)!r} exists; checkpoints are never overwritten (a crash "
            "mid-write would lose both): give each checkpoint a new path."
        )
    state, _ = _state_dict(tree, members, shared, where, clone=True)
    partial = target.with_name(target.name + ".partial")
    world_size, rank = _group_shape(group)
    if rank == 0 and partial.exists():
        shutil.rmtree(partial)
    if world_size == 1:
        with _single_process():
            dcp.save(state, checkpoint_id=partial, no_dist=True)
        partial.rename(target)
        return target
    dist.barrier(group=group)
    dcp.save(state, checkpoint_id=partial, process_group=group)
    if rank == 0:
        partial.rename(target)
    dist.barrier(group=group)
    return target


def load(
    path: str | os.PathLike[str],
    like: Any,
    members: Sequence[int],
    *,
    shared: Any = None,
    group: Any = None,
) -> tuple[Any, Any]:
    """Read the given members (and the shared state) of a checkpoint written by :func:`save`.

    Any world size may read a checkpoint written by any other: each rank asks for its own
    members' keys. Collective when a process group is initialized (every rank calls it);
    without one it reads in this process alone.

    Args:
      path: a checkpoint directory written by :func:`save`.
      like: a pytree of tensors shaped like the tree to read: leaves with a leading dim of
        ``len(members)`` (for example this rank's freshly initialized block); only shapes,
        dtypes and devices are used.
      members: the member indices to read, in the order of the leading dim.
      shared: a pytree of tensors shaped like the saved shared state, or ``None`` to skip it.
      group: the process group (default: the world).

    Returns:
      ``(tree, shared)``: new tensors (``like`` is not modified); ``shared`` is ``None`` when
      not asked for.
    """
    import torch.distributed.checkpoint as dcp

    where = "fs.distributed.load"
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: path must be a str or path, got {type(path).__name__}.")
    source = Path(path)
    if not (source / ".metadata").is_file():
        partial = source.with_name(source.name + ".partial")
        hint = f" ({str(partial)!r} exists: that save did not finish)" if partial.exists() else ""
        raise ValueError(
            f"{where}: {str(source)!r} is not a complete checkpoint (no .metadata){hint}."
        )
    state, rebuild = _state_dict(like, members, shared, where, clone=False)
    world_size, _ = _group_shape(group)
    if world_size == 1:
        with _single_process():
            dcp.load(state, checkpoint_id=source, no_dist=True)
    else:
        dcp.load(state, checkpoint_id=source, process_group=group)
    return rebuild(state)


# ----------------------------------------------------------------------- data-parallel module
class StructuredModule(nn.Module):
    """A module whose parameters are a raw tree, and whose forward runs ``model`` on its image.

    The route to ``DistributedDataParallel`` for structured models: DDP wraps this module, its
    parameters are the raw leaves (factored raws included, one parameter per tensor), and
    ``forward`` is ``functional_call(model, tree.apply(raw), args)``, so the weights are
    recomputed from the averaged raw every step and stay in the set. ``torch.func`` transforms
    are not needed on the DDP-wrapped module (they fail there), and nothing is registered on
    ``model`` (unlike ``parametrize``, which gives it a new class per module). ``model`` is kept
    as a template and is not a submodule: its own parameters are never trained or synchronized,
    and neither are its buffers (use buffer-free models, or synchronize buffers yourself).

    Args:
      model: the module whose parameters the structured tree replaces.
      tree: the structure tree (``fs.structure(spec)``).
      raw: the raw tree (``tree.init(dict(model.named_parameters()))``); copied.

    Example:
      >>> import functional_struct as fs
      >>> model = torch.nn.Linear(3, 3)
      >>> tree = fs.structure({"weight": fs.LowRank(1)})
      >>> module = StructuredModule(model, tree, tree.init(dict(model.named_parameters())))
      >>> [tuple(p.shape) for p in module.parameters()]  # in path order: bias, weight's factors
      [(3,), (3, 1), (3, 1)]
      >>> int(torch.linalg.matrix_rank(module.weights()["weight"].detach()))
      1
      >>> module(torch.ones(2, 3)).shape
      torch.Size([2, 3])
    """

    def __init__(self, model: nn.Module, tree: StructureTree, raw: Any) -> None:
        """Copy ``raw`` into parameters (see the class docstring)."""
        super().__init__()
        where = "fs.distributed.StructuredModule"
        if not isinstance(model, nn.Module):
            raise TypeError(f"{where}: model must be an nn.Module, got {type(model).__name__}.")
        if not isinstance(tree, StructureTree):
            raise TypeError(
                f"{where}: tree must be a structure tree (fs.structure(spec)), got "
                f"{type(tree).__name__}."
            )
        names, leaves, spec = _tensors(raw, where, "raw")
        self._order = _by_path(names)  # parameters in path order: state dicts agree across runs
        self.raw_leaves = nn.ParameterList(
            nn.Parameter(leaves[i].detach().clone()) for i in self._order
        )
        self._spec = spec
        self._tree = tree
        self._template = (model,)

    def raw(self) -> Any:
        """The raw tree, made of this module's parameters (gradients flow to them)."""
        leaves: list[Any] = [None] * len(self._order)
        for parameter, i in zip(self.raw_leaves, self._order, strict=True):
            leaves[i] = parameter
        return optree.tree_unflatten(self._spec, leaves)

    def weights(self) -> Any:
        """The structured weights, ``tree.apply(raw())``."""
        return self._tree.apply(self.raw())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """``model(*args, **kwargs)`` with the structured weights."""
        return functional_call(self._template[0], self.weights(), args, kwargs)


# ---------------------------------------------------------------------------------- launching
def _loopback_interface() -> str | None:
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return None
    return next((n for n in names if n in ("lo", "lo0")), None)


def _entry(
    rank: int,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    port: int,
    world_size: int,
    timeout: float,
    results: str,
) -> None:
    store = dist.TCPStore("127.0.0.1", port, world_size, is_master=False)
    dist.init_process_group(
        "gloo",
        store=store,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout),
    )
    try:
        result = fn(rank, world_size, *args)
        torch.save(result, os.path.join(results, f"{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # A normal interpreter exit can abort (SIGABRT, "terminate called without an active
    # exception") when gloo's threads still hold tensors during finalization; the result is
    # on disk, so leave without finalizing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_local(
    fn: Callable[..., Any],
    world_size: int = 2,
    *,
    args: tuple[Any, ...] = (),
    timeout: float = 120.0,
    threads: int = 1,
) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` local processes joined by gloo.

    For tests, examples and benchmarks on one machine; real jobs use ``torchrun`` (which sets
    the environment that ``dist.init_process_group()`` reads). The processes are started with
    ``spawn``, rendezvous through a ``TCPStore`` that this process opens on 127.0.0.1 at a port
    the system picks (no port race), and talk over the loopback interface. Each has its process
    group initialized (gloo, with ``timeout``) before ``fn`` runs and destroyed after.

    Args:
      fn: a module-level (picklable) function ``fn(rank, world_size, *args)``; its result must
        load with ``torch.load(weights_only=True)`` (tensors, numbers, strings, containers).
      world_size: the number of processes.
      args: more arguments for ``fn``.
      timeout: seconds for the whole run; past it every process is killed and
        ``TimeoutError`` raised. Also the process group's timeout.
      threads: ``OMP_NUM_THREADS`` for each process (the machine's cores are shared).

    Returns:
      The results of ``fn``, by rank.

    Raises:
      TimeoutError: the run took longer than ``timeout``.
      torch.multiprocessing.ProcessRaisedException: a process raised (its traceback is in
        the message); torch.multiprocessing.ProcessExitedException: a process died. The
        others are terminated.
    """
    import torch.multiprocessing as mp

    where = "fs.distributed.run_local"
    if not callable(fn):
        raise TypeError(f"{where}: fn must be callable, got {type(fn).__name__}.")
    world_size = _int(world_size, "world_size", where, 1)
    threads = _int(threads, "threads", where, 1)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise ValueError(f"{where}: timeout must be a number of seconds > 0, got {timeout!r}.")
    store = dist.TCPStore("127.0.0.1", 0, world_size + 1, is_master=True, wait_for_workers=False)
    environment = {"OMP_NUM_THREADS": str(threads)}
    loopback = _loopback_interface()
    if loopback is not None and "GLOO_SOCKET_IFNAME" not in os.environ:
        environment["GLOO_SOCKET_IFNAME"] = loopback
    saved = {key: os.environ.get(key) for key in environment}
    with tempfile.TemporaryDirectory() as results:
        os.environ.update(environment)
        try:
            context = mp.start_processes(
                _entry,
                args=(fn, tuple(args), store.port, world_size, float(timeout), results),
                nprocs=world_size,
                join=False,
                start_method="spawn",
            )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=0.5):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{where}: {world_size} processes ran past {timeout} s; killed."
                    )
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                    process.join()
        return [
            torch.load(os.path.join(results, f"{r}.pt"), weights_only=True)
            for r in range(world_size)
        ]
