"""The leaf contract: the abstract base every structure derives from.

A structure is a frozen dataclass of hyperparameters (never tensors) with five pure methods.
Only shapes and dtypes are checked eagerly, here; value checks live in ``contains()``, because
``if (x < 0).any()`` breaks ``vmap`` and ``torch.compile``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

__all__ = [
    "LINALG_DTYPES",
    "AbstractStructure",
    "add_to_diagonal",
    "close",
    "default_tolerances",
    "eye_like",
    "finite_or_zero",
    "floor_margin",
    "nan_where_not",
    "largest_entry_signs",
]

# (atol, rtol) that `contains` uses when none are given. Chosen from the rounding error of the
# maps themselves: an orthogonal 256 x 256 float32 matrix from Cayley or QR is orthogonal to
# about 1e-5 elementwise, so float32 gets 1e-4.
_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-9, 1e-9),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
}

LINALG_DTYPES = (torch.float32, torch.float64)
_ALL_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def default_tolerances(
    dtype: torch.dtype, atol: float | None = None, rtol: float | None = None
) -> tuple[float, float]:
    """The ``(atol, rtol)`` that ``contains`` uses for ``dtype``, unless given explicitly.

    Args:
      dtype: a floating-point dtype.
      atol: an absolute tolerance that overrides the default.
      rtol: a relative tolerance that overrides the default.

    Returns:
      The pair ``(atol, rtol)``.

    Example:
      >>> default_tolerances(torch.float32)
      (0.0001, 0.0001)
      >>> default_tolerances(torch.float64, rtol=0.0)
      (1e-09, 0.0)
    """
    default_atol, default_rtol = _TOLERANCES.get(dtype, _TOLERANCES[torch.float32])
    return (default_atol if atol is None else atol, default_rtol if rtol is None else rtol)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class AbstractStructure(abc.ABC):
    """A set of matrices, with pure maps between raw tensors and members of the set.

    Concrete structures are frozen dataclasses whose fields are hyperparameters, so they compare
    equal, hash and pickle by value, and are safe to close over in ``vmap``/``torch.compile``.
    The trailing ``core_ndim`` dims of a tensor are the structure's; leading dims are batch.

    Subclasses implement ``_apply``, ``_inverse``, ``_contains``, ``_project`` and ``_init``
    on tensors that have already passed the shape and dtype checks; the public methods run those
    checks and turn bad input into a ``ValueError``/``TypeError`` that names the structure.
    """

    core_ndim: ClassVar[int] = 2
    """How many trailing dims belong to the structure (2 for matrices, 1 for vectors)."""

    dtypes: ClassVar[tuple[torch.dtype, ...]] = _ALL_FLOAT_DTYPES
    """The dtypes the structure accepts; linear-algebra structures accept float32/float64 only."""

    square: ClassVar[bool] = False
    """Whether the two trailing dims must be equal."""

    inverse_outside: ClassVar[str] = "nan"
    """What ``inverse`` gives for a value outside the set. ``"nan"``: a NaN raw for that batch
    element (the base class masks every element that ``contains`` rejects). ``"project"``: the
    raw of ``project(value)``, so that ``apply(inverse(v)) ≈ project(v)`` for every finite ``v``
    (the structure's ``_inverse`` guarantees it). Non-finite values give NaN either way."""

    raw_names: ClassVar[tuple[str, ...] | None] = None
    """For factored structures, whose raw is a tuple of tensors: the names of its parts (for
    example ``("left", "right")`` for ``LowRank``). None: the raw is one tensor."""

    # ----------------------------------------------------------------------------- public API
    def apply(self, raw: Tensor) -> Tensor:
        """Map a raw, unconstrained tensor to a member of the set.

        Args:
          raw: a floating-point tensor of the raw shape (a tuple of them for factored
            structures, see ``raw_names``); leading dims are batch dims.

        Returns:
          A tensor of the structured shape, with the dtype and device of ``raw``.
        """
        self._check_raw(raw, "apply")
        return self._apply(raw)

    def inverse(self, value: Tensor) -> Tensor:
        """A right inverse of ``apply``: ``apply(inverse(value)) ≈ value`` for members.

        For any other value the answer follows ``inverse_outside``: a NaN raw for that batch
        element (``"nan"``), or the raw of ``project(value)`` (``"project"``); a value with NaN
        or Inf entries always gives NaN. It never raises on values, and never needs a host sync.

        Args:
          value: a tensor of the structured shape; leading dims are batch dims.

        Returns:
          A raw tensor (a tuple of them for factored structures).
        """
        self._check_value(value, "inverse", "value")
        finite = self._all_core(torch.isfinite(value))
        safe = finite_or_zero(value)
        raw = self._inverse(safe)
        if self.inverse_outside == "project":
            return nan_where_not(finite, raw)
        atol, rtol = default_tolerances(value.dtype)
        keep = self._contains(safe, atol, rtol) & finite
        return nan_where_not(keep, raw)

    def contains(
        self, value: Tensor, atol: float | None = None, rtol: float | None = None
    ) -> Tensor:
        """Whether each matrix of a batch is in the set, within tolerances.

        Args:
          value: a tensor of the structured shape; leading dims are batch dims.
          atol: absolute tolerance; defaults to ``default_tolerances(value.dtype)``.
          rtol: relative tolerance; defaults to ``default_tolerances(value.dtype)``.

        Returns:
          A bool tensor of the batch shape. NaN or Inf entries make it False.
        """
        self._check_value(value, "contains", "value")
        atol, rtol = default_tolerances(value.dtype, atol, rtol)
        self._check_tolerance(atol, "atol")
        self._check_tolerance(rtol, "rtol")
        finite = self._all_core(torch.isfinite(value))
        return self._contains(finite_or_zero(value), atol, rtol) & finite

    def project(self, value: Tensor) -> Tensor:
        """The nearest member of the set in the Frobenius norm; members are fixed points.

        Args:
          value: any tensor of the structured shape; leading dims are batch dims.

        Returns:
          A member of the set; NaN for a batch element with NaN or Inf entries.
        """
        self._check_value(value, "project", "value")
        finite = self._all_core(torch.isfinite(value))
        return nan_where_not(finite, self._project(finite_or_zero(value)))

    def raw_from(self, value: Tensor) -> Tensor:
        """The raw tensor whose image is the member nearest to ``value``: start from a weight.

        ``inverse(project(value))``, detached: the one call that turns an existing (trained,
        pretrained or default-initialized) weight into a raw tensor for this structure.

        Args:
          value: any tensor of the structured shape.

        Returns:
          A raw tensor, with no autograd history.

        Example:
          >>> raw = fs.Orthogonal().raw_from(torch.tensor([[2.0, 0.0], [0.0, 0.5]]))
          >>> fs.Orthogonal().apply(raw)
          tensor([[1., 0.],
                  [0., 1.]])
        """
        value = value.detach()
        return self.inverse(self.project(value))

    def init(
        self,
        shape: Sequence[int] | torch.Size,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """A random raw tensor whose image is a sensible random member of the set.

        Args:
          shape: the *structured* shape, batch dims included.
          generator: the random generator to draw from.
          dtype: the dtype (default: ``torch.get_default_dtype()``).
          device: the device (default: the generator's device, else the CPU).

        Returns:
          A raw tensor (a tuple of them for factored structures).
        """
        shape = self._check_init_shape(shape)
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        self._check_shape(shape, "init", "shape")
        self._check_dtype(dtype, "init")
        return self._init(shape, generator, dtype, torch.device(device))

    # ------------------------------------------------------------------------ for subclasses
    @abc.abstractmethod
    def _apply(self, raw: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _inverse(self, value: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor: ...

    @abc.abstractmethod
    def _project(self, value: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _init(
        self,
        shape: torch.Size,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> Tensor: ...

    def _check_core_shape(self, core: tuple[int, ...]) -> str | None:
        """Why the trailing ``core_ndim`` dims cannot hold the structure, or None if they can."""
        if self.square and core[-1] != core[-2]:
            return "needs a square matrix in its last two dims"
        return None

    @property
    def raw_core_ndim(self) -> int:
        """How many trailing dims of a raw tensor belong to the structure (1 for packed forms)."""
        return self.core_ndim

    def _check_raw_core_shape(self, core: tuple[int, ...]) -> str | None:
        """Like ``_check_core_shape``, for the trailing ``raw_core_ndim`` dims of a raw tensor."""
        return self._check_core_shape(core)

    def _all_core(self, mask: Tensor) -> Tensor:
        """Reduce a bool tensor of the structured shape to the batch shape with ``all``."""
        if self.core_ndim == 0:
            return mask
        return mask.flatten(mask.dim() - self.core_ndim).all(-1)

    def _init_like(
        self, like: Tensor, batch_shape: tuple[int, ...], generator: torch.Generator | None
    ) -> Tensor:
        """The raw a structure tree's ``init`` puts where ``like`` stands: a fresh ``init``."""
        return self.init(
            (*batch_shape, *like.shape), generator=generator, dtype=like.dtype, device=like.device
        )

    # ------------------------------------------------------------------------------- checks
    def _check_tolerance(self, tol: Any, name: str) -> None:
        if isinstance(tol, bool) or not isinstance(tol, (int, float)):
            raise self._fail(
                "contains",
                f"{name} must be a float >= 0, got {type(tol).__name__} {tol!r}.",
                TypeError,
            )
        if not tol >= 0:
            raise self._fail("contains", f"{name} must be a float >= 0, got {tol!r}.")

    def _check_init_shape(self, shape: Any) -> torch.Size:
        if not isinstance(shape, Sequence) or isinstance(shape, str):
            raise self._fail(
                "init",
                f"shape must be a tuple of ints such as (3, 3), got {type(shape).__name__}: "
                f"{shape!r}.",
                TypeError,
            )
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise self._fail(
                "init", f"shape must be a tuple of ints, got {tuple(shape)!r}.", TypeError
            )
        if any(d < 0 for d in shape):
            raise self._fail("init", f"shape must have sizes >= 0, got shape {tuple(shape)}.")
        return torch.Size(shape)

    def _fail(self, method: str, what: str, cls: type[Exception] = ValueError) -> Exception:
        return cls(f"{self!r}.{method}: {what}")

    def _check_dtype(self, dtype: torch.dtype, method: str) -> None:
        if dtype not in self.dtypes:
            names = " or ".join(_dtype_name(d) for d in self.dtypes)
            raise self._fail(
                method,
                f"needs a tensor of dtype {names}, got {_dtype_name(dtype)}. "
                f"Convert it first, for example with .to(torch.{_dtype_name(self.dtypes[-1])}).",
                TypeError,
            )

    def _check_shape(self, shape: torch.Size, method: str, name: str, raw: bool = False) -> None:
        # On every call: keep the passing path to a few attribute reads and comparisons.
        n = self.raw_core_ndim if raw else self.core_ndim
        if len(shape) < n:
            kind = {1: "a vector", 2: "a matrix"}.get(n, f"{n} dims")
            raise self._fail(
                method,
                f"{name} needs {kind} in its last {n} dim{'s' if n > 1 else ''}, "
                f"got shape {tuple(shape)}.",
            )
        core = tuple(shape[len(shape) - n :]) if n else ()
        if 0 in core and not (raw and n != self.core_ndim):  # a packed raw may be empty
            raise self._fail(
                method, f"{name} needs core dims of size >= 1, got shape {tuple(shape)}."
            )
        problem = self._check_raw_core_shape(core) if raw else self._check_core_shape(core)
        if problem is not None:
            raise self._fail(method, f"{name} {problem}, got shape {tuple(shape)}.")

    def _check_raw(self, raw: Any, method: str) -> None:
        """Check a raw input: one tensor, or for factored structures a tuple of them."""
        if self.raw_names is None:
            self._check_value(raw, method, "raw", raw=True)
            return
        names = self.raw_names
        if not isinstance(raw, tuple) or len(raw) != len(names):
            got = f"a tuple of {len(raw)}" if isinstance(raw, tuple) else type(raw).__name__
            raise self._fail(
                method, f"raw must be a tuple ({', '.join(names)}), got {got}.", TypeError
            )
        for name, part in zip(names, raw, strict=True):
            self._check_raw_part(name, part, method)
        self._check_one_dtype_and_device(method, "raw parts", list(zip(names, raw, strict=True)))
        problem = self._check_raw_shapes(raw)
        if problem is not None:
            shapes = ", ".join(
                f"{n} {tuple(p.shape)}"
                for n, p in zip(names, raw, strict=True)
                if isinstance(p, Tensor)
            )
            raise self._fail(method, f"raw {problem}, got {shapes}.")

    def _check_one_dtype_and_device(
        self, method: str, what: str, labelled: list[tuple[str, Tensor]]
    ) -> None:
        """Raise if the ``(label, tensor)`` pairs of one raw mix dtypes or devices."""
        for attribute, cls in (("dtype", TypeError), ("device", ValueError)):
            if len({getattr(t, attribute) for _, t in labelled}) > 1:
                got = ", ".join(f"{label} {getattr(t, attribute)}".strip() for label, t in labelled)
                raise self._fail(method, f"{what} must share one {attribute}, got {got}.", cls)

    def _check_raw_part(self, name: str, part: Any, method: str) -> None:
        """Check one part of a factored raw (a tensor of an accepted dtype, by default)."""
        self._check_value(part, f"{method}: raw part {name!r}", "it", raw=None)

    def _check_raw_shapes(self, raw: tuple[Any, ...]) -> str | None:
        """Why the parts of a factored raw do not fit together, or None if they do."""
        return None

    def _check_value(self, x: Any, method: str, name: str, raw: bool | None = False) -> None:
        if not isinstance(x, Tensor):
            raise self._fail(
                method, f"{name} must be a torch.Tensor, got {type(x).__name__}.", TypeError
            )
        self._check_dtype(x.dtype, method)
        if raw is not None:  # None: the caller checks the shape
            self._check_shape(x.shape, method, name, raw)


def eye_like(x: Tensor) -> Tensor:
    """The identity matching the last dim, dtype and device of ``x``."""
    return torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)


def finite_or_zero(x: Tensor) -> Tensor:
    """``x`` with NaN/Inf entries set to 0, for ``eigh``/``svd``, which raise on them.

    ``contains`` answers False for such values anyway; ``apply`` keeps them in its output.
    """
    return torch.where(torch.isfinite(x), x, 0.0)


def largest_entry_signs(vectors: Tensor) -> Tensor:
    """The (..., 1, k) signs that make each column's largest entry positive.

    Eigen- and singular vectors are unique only up to sign, and LAPACK's signs differ between
    batched and single calls: multiplying by these gives one answer for every batch layout.
    """
    top = vectors.gather(-2, vectors.abs().argmax(-2, keepdim=True))
    return torch.where(top < 0, -1.0, 1.0).to(vectors.dtype)


def floor_margin(shift: Tensor, scale: Tensor, atol: float, rtol: float) -> Tensor:
    """How far below a floor ``shift`` a member's smallest eigen- or singular value may sit.

    Rounding in ``apply`` can take it a little below the floor, never below half of it; and a
    ``contains`` that allowed more than the tolerance (``atol + rtol * scale``, ``scale`` the
    largest value) would accept matrices that ``project`` then moves. Both bounds hold.
    """
    return torch.minimum(0.5 * shift, atol + rtol * scale)


def nan_where_not(keep: Tensor, raw: Any) -> Any:
    """``raw`` (a tensor or a tuple tree of them) with NaN in every batch element not ``keep``.

    ``keep`` has the batch shape; each leaf of ``raw`` has those leading dims and more.
    """
    if isinstance(raw, tuple):
        return tuple(nan_where_not(keep, part) for part in raw)
    mask = keep.reshape(keep.shape + (1,) * (raw.dim() - keep.dim()))
    return torch.where(mask, raw, torch.nan)


def add_to_diagonal(a: Tensor, shift: Tensor) -> Tensor:
    """``a + shift * I`` for a batch of square matrices and a batch of scalars ``shift``."""
    n = a.shape[-1]
    return a + torch.diag_embed(shift.unsqueeze(-1).expand(*shift.shape, n))


def close(a: Tensor, b: Tensor, atol: float, rtol: float, core_ndim: int = 2) -> Tensor:
    """Whether ``|a - b| <= atol + rtol * |b|`` everywhere in the core dims, per batch element."""
    ok = (a - b).abs() <= atol + rtol * b.abs()
    return ok.flatten(ok.dim() - core_ndim).all(-1)
