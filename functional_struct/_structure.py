"""The leaf contract: the abstract base every structure derives from.

A structure is a frozen dataclass of hyperparameters (never tensors) with five pure methods.
Only shapes and dtypes are checked eagerly, here; value checks live in ``contains()``, because
``if (x < 0).any()`` breaks ``vmap`` and ``torch.compile``.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import torch
from torch import Tensor

from ._rawform import Raw, RawShape, core_shapes, is_factored, leaves, one_tensor

if TYPE_CHECKING:
    from .linalg.operators import Operator

__all__ = [
    "CAPABILITIES",
    "COMPLEX_DTYPES",
    "LINALG_DTYPES",
    "SUBSPACE_DTYPES",
    "AbstractStructure",
    "NotSupported",
    "capability",
    "raw_form_of",
    "close",
    "default_tolerances",
    "finite_or_zero",
    "nan_where_not",
]

# (atol, rtol) that `contains` uses when none are given. Chosen from the rounding error of the
# maps themselves: an orthogonal 256 x 256 float32 matrix from Cayley or QR is orthogonal to
# about 1e-5 elementwise, so float32 gets 1e-4.
_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-9, 1e-9),
    torch.float32: (1e-4, 1e-4),
    torch.complex128: (1e-9, 1e-9),
    torch.complex64: (1e-4, 1e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
}

LINALG_DTYPES = (torch.float32, torch.float64)
COMPLEX_DTYPES = (torch.complex64, torch.complex128)
_ALL_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
SUBSPACE_DTYPES: tuple[torch.dtype, ...] = _ALL_FLOAT_DTYPES + COMPLEX_DTYPES
"""Masks, patterned subspaces and low-rank products: any floating dtype, real or complex."""


def default_tolerances(
    dtype: torch.dtype, atol: float | None = None, rtol: float | None = None
) -> tuple[float, float]:
    """The ``(atol, rtol)`` that ``contains`` uses for ``dtype``, unless given explicitly.

    Args:
      dtype: a floating-point or complex dtype (complex ones take their real part's).
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


R = TypeVar("R", bound=Raw)
_F = TypeVar("_F", bound=Callable[..., Any])


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class NotSupported(NotImplementedError):
    """A structure was asked for an optional capability it does not have.

    The message names the structure and the capability; ``s.supports(name)`` asks first.
    """


def capability(name: str) -> Callable[[_F], _F]:
    """Mark a method of :class:`AbstractStructure` as the default of an optional capability.

    A structure has the capability when its class overrides the method (``s.supports(name)``);
    the default either computes the answer densely or raises :class:`NotSupported`. Laws for
    the capability register with ``fs.testing.register_law(..., capability=name)`` and
    ``check_laws`` runs them exactly for the structures that support it.
    """

    def mark(method: _F) -> _F:
        if name in CAPABILITIES:
            raise ValueError(f"capability {name!r} is declared twice.")
        CAPABILITIES[name] = method.__name__
        setattr(method, "__capability__", name)  # noqa: B010 - a function attribute
        return method

    return mark


CAPABILITIES: dict[str, str] = {}
"""Every optional capability: its name, and the method of ``AbstractStructure`` that carries it."""


class AbstractStructure(abc.ABC, Generic[R]):
    """A set of matrices, with pure maps between raw tensors and members of the set.

    Concrete structures are frozen dataclasses whose fields are hyperparameters, so they compare
    equal, hash and pickle by value, and are safe to close over in ``vmap``/``torch.compile``
    (a concrete class that is not one fails on its first instantiation, saying how to fix it).
    The trailing ``core_ndim`` dims of a tensor are the structure's; leading dims are batch.
    ``R`` is the type of a raw: ``Tensor``, or a tuple of tensors for factored structures.

    The extension contract: implement the abstract hooks ``_apply``, ``_inverse``,
    ``_contains``, ``_project`` and ``_init`` on inputs that have already passed the shape and
    dtype checks; set the class attributes ``core_ndim``, ``dtypes``, ``square`` and
    ``inverse_outside`` where the defaults do not fit; and declare the raw form with
    ``raw_shape`` (and its inverse ``value_shape``, which also says why a shape is refused)
    when the raw is not one tensor of the value's shape. Everything else derives from those.
    """

    @property
    def core_ndim(self) -> int:
        """How many trailing dims belong to the structure (2 for matrices, 1 for vectors).

        Like the other class attributes below, a subclass sets it with ``core_ndim = 1`` in its
        body, or overrides it with a property when it depends on hyperparameters.
        """
        return 2

    @property
    def dtypes(self) -> tuple[torch.dtype, ...]:
        """The dtypes the structure accepts, raw and value alike.

        Linear-algebra structures take float32/float64, the complex ones (``Unitary``,
        ``Hermitian``, ...) complex64/complex128, and masks, patterned subspaces and low-rank
        products every floating dtype, real or complex.
        """
        return _ALL_FLOAT_DTYPES

    @property
    def square(self) -> bool:
        """Whether the two trailing dims of a value must be equal."""
        return False

    @property
    def inverse_outside(self) -> str:
        """What ``inverse`` gives for a value outside the set.

        ``"nan"``: a NaN raw for that batch element (the base class masks every element that
        ``contains`` rejects). ``"project"``: the raw of ``project(value)``, so that
        ``apply(inverse(v)) ≈ project(v)`` for every finite ``v`` (the structure's ``_inverse``
        guarantees it). Non-finite values give NaN either way.
        """
        return "nan"

    @property
    def linear(self) -> bool:
        """Whether the set is a linear subspace and ``_project`` the orthogonal projection.

        ``Sum`` splits sums of such sets exactly.
        """
        return False

    _raw_form_declared: ClassVar[bool] = False
    """Whether the class declares its raw form (overrides ``raw_shape`` or ``value_shape``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        stale = sorted(set(vars(cls)) & _HOOKS_OF_0_1)
        if stale:
            raise TypeError(
                f"{cls.__name__} defines {', '.join(stale)}: hooks of functional_struct 0.1 that "
                "0.2 no longer calls. Declare the raw form with raw_shape(shape) and "
                "value_shape(raw_shape) (raising ValueError for a refused shape), and keep a "
                "value in a tree's init with init_like(value, generator=...)."
            )
        cls._raw_form_declared = (
            cls.raw_shape is not AbstractStructure.raw_shape
            or cls.value_shape is not AbstractStructure.value_shape
        )

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls not in _CHECKED_CLASSES:
            params = cls.__dict__.get("__dataclass_params__")
            if params is None or not params.frozen:
                raise TypeError(
                    f"{cls.__name__} must be a frozen dataclass: decorate it with "
                    "@dataclasses.dataclass(frozen=True), so that it compares, hashes and "
                    "pickles by its hyperparameters (a subclass needs the decorator too)."
                )
            _CHECKED_CLASSES.add(cls)
        return super().__new__(cls)

    # ----------------------------------------------------------------------------- raw form
    def raw_shape(self, shape: tuple[int, ...]) -> RawShape:
        """The core shape of the raw for a value of core shape ``shape``.

        A ``torch.Size`` for one tensor, or a (nested) tuple of them for a factored raw; batch
        dims lead every tensor alike. It is shape arithmetic only and answers for every shape
        of ``core_ndim`` sizes (``value_shape`` says which are refused). The default: one tensor
        of the value's shape.

        Example:
          >>> fs.LowRank(2).raw_shape((5, 4))
          _Pair(left=torch.Size([5, 2]), right=torch.Size([4, 2]))
          >>> fs.UpperTriangular(packed=True).raw_shape((3, 3))
          torch.Size([6])
        """
        return torch.Size(shape)

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """The core shape of the value a raw of core shape(s) ``raw_shape`` stands for.

        The inverse of :meth:`raw_shape`; it raises a ``ValueError`` saying why when no value
        of this structure has that raw (a packed length that fits no ``n``, a rank larger than
        the matrix, a wide matrix for ``Orthogonal``, ...). A value shape ``s`` is accepted
        exactly when ``value_shape(raw_shape(s)) == s``.
        """
        raw_shape = one_tensor(raw_shape, self.core_ndim)
        if self.square and raw_shape[-1] != raw_shape[-2]:
            raise ValueError("needs a square matrix in its last two dims")
        return raw_shape

    # --------------------------------------------------------------------------- capabilities
    def supports(self, name: str) -> bool:
        """Whether the structure has the optional capability ``name`` (see ``CAPABILITIES``).

        Example:
          >>> fs.Diagonal().supports("no such capability")
          False
        """
        method = CAPABILITIES.get(name)
        if method is None:
            return False
        provided = getattr(type(self), method) is not getattr(AbstractStructure, method)
        return provided and self._refusal(name) is None

    def _refusal(self, name: str) -> str | None:
        """Why this instance refuses capability ``name`` that its class provides, or None.

        For classes whose options decide (the full form of a structure with a packed one has
        no log-det); ``supports`` is False and the ``NotSupported`` message gives this reason.
        """
        return None

    def _unsupported(self, name: str) -> NotSupported:
        """The error a capability's default raises: structure, capability, what to use instead."""
        hint = self._reason(name)
        return NotSupported(
            f"{self!r} does not support {name!r} (s.supports({name!r}) is False for it)"
            + (f": {hint}" if hint else ".")
        )

    def _reason(self, name: str) -> str:
        """Why ``supports(name)`` is False: the instance's refusal, else the class's reason."""
        return self._refusal(name) or self._instead(name)

    _no_log_det: ClassVar[str] = "its map from raw to value is not a bijection of the raw entries"
    """Why the structure has no log-det (the ``NotSupported`` message's reason)."""

    def _instead(self, name: str) -> str:
        """Why this structure lacks capability ``name`` and what to use instead ('' if unknown)."""
        return self._no_log_det if name == "log_det" else ""

    def _require(self, name: str) -> None:
        if not self.supports(name):
            raise self._unsupported(name)

    @capability("linalg")
    def _operator(self, raw: R) -> Operator:
        """The member ``apply(raw)`` as an ``fs.linalg.operators`` operator (capability "linalg").

        ``fs.linalg`` calls it on a raw that passed the raw checks; batch elements with a
        non-finite raw entry are NaN afterwards, so the hook need not care about them (it must
        not raise on them: use the ``_ex`` factorizations). Structures that hold their member
        in a cheaper form (a diagonal, factors, a first row) return that form; the default is
        the dense matrix, for which every rule is dense.
        """
        from .linalg.operators import Dense

        return Dense(self._apply(raw))

    @capability("log_det")
    def _forward_and_log_det(self, raw: R) -> tuple[Tensor, Tensor]:
        """``apply(raw)`` and ``log|det J|`` of the map (capability "log_det").

        Provided by structures whose map is a bijection from the raw's entries (a packed raw:
        every entry is a free coordinate) onto the set. ``J`` is the Jacobian from the raw
        entries to the coordinates :meth:`_log_det_coordinates` reads off a tangent; the
        log-det has the batch shape. Called on a checked raw, possibly with zeros where the
        caller masks non-finite entries afterwards; it must not raise on values.
        """
        raise self._unsupported("log_det")

    def _log_det_coordinates(self, value: Tensor, tangent: Tensor) -> Tensor:
        """The free coordinates of ``tangent`` at ``value``: ``(..., d)`` (capability "log_det").

        The coordinates in which :meth:`forward_and_log_det` measures volume on the set. The
        default reads every entry of the core (elementwise sets); structures with fewer free
        coordinates (a triangle, a packed pattern, ``Qᵀ dQ`` below the diagonal) override it.
        ``tangent`` may have more leading dims than ``value``; they broadcast.
        """
        return tangent.reshape(*tangent.shape[: tangent.dim() - self.core_ndim], -1)

    @capability("manifold")
    def _retract(self, value: Tensor, step: Tensor) -> Tensor:
        """A retraction: the point reached from ``value`` along the tangent ``step``.

        Capability "manifold", with :meth:`_tangent` (and optionally
        :meth:`_riemannian_gradient`, :meth:`_transport`): structures whose set is a smooth
        manifold provide them so that points can be optimized on the set directly
        (``fs.optim``). Called on finite, checked values; it must stay in the set.
        """
        raise self._unsupported("manifold")

    def _tangent(self, value: Tensor, vector: Tensor) -> Tensor:
        """The orthogonal projection of ``vector`` onto the tangent space at ``value``."""
        raise self._unsupported("manifold")

    def _riemannian_gradient(self, value: Tensor, grad: Tensor) -> Tensor:
        """The Riemannian gradient of the structure's metric from a Euclidean gradient.

        The tangent projection by default (the metric the set inherits from the Frobenius
        inner product); sets with another metric (the affine-invariant one for
        positive-definite matrices, Fisher's for the simplex) override it.
        """
        return self._tangent(value, grad)

    def _transport(self, value: Tensor, new_value: Tensor, vector: Tensor) -> Tensor:
        """A vector transport of the tangent ``vector`` at ``value`` to ``new_value``.

        By default the projection onto the new tangent space (a vector transport for every
        embedded submanifold).
        """
        return self._tangent(new_value, vector)

    # ----------------------------------------------------------------------------- public API
    def apply(self, raw: R) -> Tensor:
        """Map a raw, unconstrained tensor to a member of the set.

        Args:
          raw: a floating-point tensor of the raw shape (a tuple of them for factored
            structures, see ``raw_shape``); leading dims are batch dims.

        Returns:
          A tensor of the structured shape, with the dtype and device of ``raw``.
        """
        self._check_raw(raw, "apply")
        return self._apply(raw)

    def inverse(self, value: Tensor) -> R:
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

    def raw_from(self, value: Tensor) -> R:
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
    ) -> R:
        """A random raw tensor whose image is a sensible random member of the set.

        Args:
          shape: the *structured* shape, batch dims included.
          generator: the random generator to draw from.
          dtype: the dtype (default: ``torch.get_default_dtype()``, or its complex
            counterpart for structures that take complex dtypes only).
          device: the device (default: the generator's device, else the CPU).

        Returns:
          A raw tensor (a tuple of them for factored structures).
        """
        shape = self._check_init_shape(shape)
        if dtype is None:
            dtype = torch.get_default_dtype()
            if dtype not in self.dtypes and dtype.to_complex() in self.dtypes:
                dtype = dtype.to_complex()
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        self._check_shape(shape, "init", "shape")
        self._check_dtype(dtype, "init")
        return self._init(shape, generator, dtype, torch.device(device))

    def init_like(self, value: Tensor, *, generator: torch.Generator | None = None) -> R:
        """A raw to start training a parameter whose current value is ``value``.

        By default a fresh :meth:`init` of ``value``'s shape, dtype and device: the value itself
        is not used. Structures that keep a parameter's value (``Frozen``, chains that start
        with it, LoRA sums) start from it instead. A structure tree's ``init`` calls this.

        Args:
          value: a tensor of the structured shape (batch dims included).
          generator: the random generator to draw from.

        Returns:
          A raw tensor (a tuple of them for factored structures).
        """
        self._check_value(value, "init_like", "value")
        return self.init(value.shape, generator=generator, dtype=value.dtype, device=value.device)

    def forward_and_log_det(self, raw: R) -> tuple[Tensor, Tensor]:
        """``apply(raw)`` and the log-absolute-determinant of the map's Jacobian.

        For structures whose map is a bijection from the raw's entries onto the set
        (``s.supports("log_det")``: elementwise sets and packed forms): ``log_det`` is
        ``log|det J|``, ``J`` the Jacobian from the raw entries to the set's free coordinates
        that each structure documents (the lower triangle for symmetric sets, ``Qᵀ dQ`` below
        the diagonal for rotations, ...). A density ``p`` on the set pulls back to the raw
        entries as ``p(apply(raw)) * exp(log_det)``. Closed forms: never a dense Jacobian.

        Args:
          raw: a raw tensor; leading dims are batch dims.

        Returns:
          ``(value, log_det)``: ``value == apply(raw)`` and ``log_det`` of the batch shape (for
          elementwise sets, every entry is its own batch element); both NaN for a batch
          element whose raw has a NaN or Inf entry.

        Raises:
          NotSupported: the map is not a bijection of its raw entries; the message says what
            to use instead (usually ``packed=True``).

        Example:
          >>> value, log_det = fs.Positive().forward_and_log_det(torch.tensor([0.0, 2.0]))
          >>> log_det  # log softplus'(raw) = log sigmoid(raw)
          tensor([-0.6931, -0.1269])
        """
        self._require("log_det")
        self._check_raw(raw, "forward_and_log_det")
        return self._log_det_at(raw)

    def inverse_and_log_det(self, value: Tensor) -> tuple[R, Tensor]:
        """``inverse(value)`` and ``log|det|`` of the inverse map's Jacobian.

        The negative of :meth:`forward_and_log_det`'s at ``raw = inverse(value)`` (an inverse
        and a forward). A value outside the set gets what ``inverse`` gives it (NaN, or the
        projection's raw where ``inverse_outside == "project"``).

        Example:
          >>> raw, log_det = fs.Positive().inverse_and_log_det(torch.tensor([0.5]))
          >>> torch.allclose(log_det, -fs.Positive().forward_and_log_det(raw)[1])
          True
        """
        self._require("log_det")
        raw = self.inverse(value)
        return raw, -self._log_det_at(raw)[1]

    def tangent(self, value: Tensor, vector: Tensor) -> Tensor:
        """Project ``vector`` onto the tangent space of the set at ``value``.

        Capability "manifold": idempotent, and the identity on tangent vectors.

        Example:
          >>> fs.UnitNorm().tangent(torch.tensor([1.0, 0.0]), torch.tensor([3.0, 4.0]))
          tensor([0., 4.])
        """
        return self._manifold_call("tangent", self._tangent, value, vector)

    def riemannian_gradient(self, value: Tensor, grad: Tensor) -> Tensor:
        """The Riemannian gradient at ``value`` of a function with Euclidean gradient ``grad``.

        For sets with the metric of their embedding, the tangent projection; each structure's
        docstring names its metric.
        """
        return self._manifold_call("riemannian_gradient", self._riemannian_gradient, value, grad)

    def retract(self, value: Tensor, step: Tensor) -> Tensor:
        """The point reached from ``value`` along the tangent ``step`` (a retraction).

        ``retract(x, 0) == x`` and ``d/dt retract(x, t v)`` at 0 is ``v`` for tangent ``v``;
        each structure's docstring names its retraction. The result is in the set.

        Example:
          >>> x = fs.UnitNorm().retract(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0]))
          >>> torch.linalg.vector_norm(x).item()
          1.0
        """
        return self._manifold_call("retract", self._retract, value, step)

    def transport(self, value: Tensor, new_value: Tensor, vector: Tensor) -> Tensor:
        """Carry the tangent ``vector`` at ``value`` to the tangent space at ``new_value``."""
        self._require("manifold")
        self._check_value(value, "transport", "value")
        self._check_value(new_value, "transport", "new_value")
        if new_value.shape != value.shape:
            raise self._fail(
                "transport",
                f"new_value must have the shape of value {tuple(value.shape)}, got "
                f"{tuple(new_value.shape)}.",
            )
        finite = self._all_core(torch.isfinite(new_value))
        moved = self._manifold_call(
            "transport",
            lambda v, w: self._transport(v, finite_or_zero(new_value), w),
            value,
            vector,
        )
        return nan_where_not(finite, moved)

    def _manifold_call(
        self, method: str, hook: Callable[[Tensor, Tensor], Tensor], value: Tensor, vector: Tensor
    ) -> Tensor:
        """Check the capability and both tensors, run the hook on finite ones, mask the rest."""
        self._require("manifold")
        self._check_value(value, method, "value")
        self._check_value(vector, method, "vector")
        if vector.shape != value.shape:
            raise self._fail(
                method,
                f"vector must have the shape of value {tuple(value.shape)}, got "
                f"{tuple(vector.shape)}.",
            )
        finite = self._all_core(torch.isfinite(value) & torch.isfinite(vector))
        return nan_where_not(finite, hook(finite_or_zero(value), finite_or_zero(vector)))

    def _log_det_at(self, raw: R) -> tuple[Tensor, Tensor]:
        """The hook on a raw with non-finite entries zeroed, its log-det NaN there after."""
        assert isinstance(raw, Tensor)  # every structure with the capability has one raw tensor
        value, log_det = self._forward_and_log_det(finite_or_zero(raw))  # type: ignore[arg-type]
        finite = torch.isfinite(raw)
        if raw.dim() > log_det.dim():  # reduce the raw's core dims (none for elementwise sets)
            finite = finite.flatten(log_det.dim()).all(-1)
        return nan_where_not(finite, value), torch.where(finite, log_det, torch.nan)

    # ------------------------------------------------------------------------ for subclasses
    @abc.abstractmethod
    def _apply(self, raw: R) -> Tensor:
        """``apply`` on a raw that passed the checks."""

    @abc.abstractmethod
    def _inverse(self, value: Tensor) -> R:
        """``inverse`` on a finite value; the base masks what the set's rule says to mask."""

    @abc.abstractmethod
    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        """``contains`` on a finite value (NaN/Inf entries are zeroed and answered False)."""

    @abc.abstractmethod
    def _project(self, value: Tensor) -> Tensor:
        """``project`` on a finite value."""

    @abc.abstractmethod
    def _init(
        self,
        shape: torch.Size,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> R:
        """``init`` for a checked shape, dtype and device."""

    def _all_core(self, mask: Tensor) -> Tensor:
        """Reduce a bool tensor of the structured shape to the batch shape with ``all``."""
        if self.core_ndim == 0:
            return mask
        return mask.flatten(mask.dim() - self.core_ndim).all(-1)

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
            example = f"torch.{_dtype_name(self.dtypes[-1])}"
            fix = (
                f"Pass one, for example dtype={example}."
                if method == "init"
                else f"Convert it first, for example with .to({example})."
            )
            raise self._fail(
                method,
                f"needs {'a' if method == 'init' else 'a tensor of'} dtype {names}, got "
                f"{_dtype_name(dtype)}. {fix}",
                TypeError,
            )

    def _check_shape(self, shape: torch.Size, method: str, name: str) -> None:
        """Check a value's shape: on every call, so the passing path stays a few comparisons."""
        n = self.core_ndim
        if len(shape) < n:
            kind = {1: "a vector", 2: "a matrix"}.get(n, f"{n} dims")
            raise self._fail(
                method,
                f"{name} needs {kind} in its last {n} dim{'s' if n > 1 else ''}, "
                f"got shape {tuple(shape)}.",
            )
        core = shape[len(shape) - n :]
        if 0 in core:
            raise self._fail(
                method, f"{name} needs core dims of size >= 1, got shape {tuple(shape)}."
            )
        if self._raw_form_declared:
            try:
                _value_of_value(self, core)
            except ValueError as problem:
                raise self._fail(method, f"{name} {problem}, got shape {tuple(shape)}.") from None
        if self.square and core[-1] != core[-2]:
            raise self._fail(
                method,
                f"{name} needs a square matrix in its last two dims, got shape {tuple(shape)}.",
            )

    def _check_raw(self, raw: Any, method: str) -> None:
        """Check a raw input against the declared raw form (``raw_shape``)."""
        if not self._raw_form_declared:  # one tensor of the value's shape: a value's checks
            self._check_value(raw, method, "raw")
            return
        compiling = torch.compiler.is_compiling()
        form = self.raw_shape((1,) * self.core_ndim) if compiling else raw_form_of(self)
        if not is_factored(form):  # one tensor: the common case, kept short
            self._check_value(raw, method, "raw", check_shape=False)
            cores: RawShape = raw.shape[raw.dim() - len(form) :] if raw.dim() >= len(form) else ()
            if raw.dim() < len(form):
                raise self._raw_problem(method, form, raw)
        elif (fast := _flat_cores(raw, form, self.dtypes)) is not None:
            cores = fast  # a flat tuple raw that passes every check below
        else:
            try:
                cores, batches = core_shapes(raw, form)
            except (TypeError, ValueError) as problem:
                raise self._fail(method, f"{problem}.", type(problem)) from None
            parts = list(leaves(raw))
            if any(part.dtype not in self.dtypes for part in parts):
                labels = [label or str(i) for i, (label, _) in enumerate(_labelled(raw, form, ""))]
                for label, part in zip(labels, parts, strict=True):
                    self._check_value(part, f"{method}: raw part {label!r}", "it", False)
            if any(b != batches[0] for b in batches[1:]):
                raise self._fail(
                    method,
                    f"raw parts need the same batch dims, got {_shapes_in_words(raw, form)}.",
                )
            if any(p.dtype != parts[0].dtype or p.device != parts[0].device for p in parts):
                named = [label for label, _ in _labelled(raw, form, "")]
                self._check_one_dtype_and_device(
                    method, "raw parts", list(zip(named, parts, strict=True))
                )
        try:
            if compiling:
                _value_of_raw_uncached(self, cores)
            else:
                _value_of_raw(self, cores)
        except ValueError as problem:
            got = _shapes_in_words(raw, form)
            lead = "; the raw has" if " got " in str(problem) else ", got"
            raise self._fail(method, f"raw {problem}{lead} {got}.") from None

    def _raw_problem(self, method: str, form: RawShape, raw: Tensor) -> Exception:
        n = len(next(leaves(form)))
        kind = {1: "a vector", 2: "a matrix"}.get(n, f"{n} dims")
        return self._fail(
            method,
            f"raw needs {kind} in its last {n} dim{'s' if n > 1 else ''}, "
            f"got shape {tuple(raw.shape)}.",
        )

    def _check_one_dtype_and_device(
        self, method: str, what: str, labelled: list[tuple[str, Tensor]]
    ) -> None:
        """Raise if the ``(label, tensor)`` pairs of one raw mix dtypes or devices."""
        for attribute, cls in (("dtype", TypeError), ("device", ValueError)):
            if len({getattr(t, attribute) for _, t in labelled}) > 1:
                got = ", ".join(f"{label} {getattr(t, attribute)}".strip() for label, t in labelled)
                raise self._fail(method, f"{what} must share one {attribute}, got {got}.", cls)

    def _check_value(self, x: Any, method: str, name: str, check_shape: bool = True) -> None:
        if not isinstance(x, Tensor):
            raise self._fail(
                method, f"{name} must be a torch.Tensor, got {type(x).__name__}.", TypeError
            )
        self._check_dtype(x.dtype, method)
        if check_shape:
            self._check_shape(x.shape, method, name)


_CHECKED_CLASSES: set[type] = set()

_HOOKS_OF_0_1 = {
    "raw_names",
    "raw_core_ndim",
    "_check_core_shape",
    "_check_raw_core_shape",
    "_check_raw_shapes",
    "_check_raw_part",
    "_init_like",
}


def _flat_cores(raw: Any, form: RawShape, dtypes: tuple[torch.dtype, ...]) -> RawShape | None:
    """The core shapes of a flat tuple raw whose tensors share batch dims, dtype and device.

    None when anything is off (or the form is nested): the general path then says what.
    """
    if type(raw) is not tuple or isinstance(form, torch.Size) or len(raw) != len(form):
        return None
    cores = []
    batch = dtype = device = None
    for x, f in zip(raw, form, strict=True):
        if not isinstance(f, torch.Size) or not isinstance(x, Tensor) or x.dim() < len(f):
            return None
        cut = x.dim() - len(f)
        if batch is None:
            batch, dtype, device = x.shape[:cut], x.dtype, x.device
        elif x.shape[:cut] != batch or x.dtype != dtype or x.device != device:
            return None
        cores.append(x.shape[cut:])
    return tuple(cores) if dtype in dtypes else None


def _value_of_raw(structure: AbstractStructure[Any], cores: RawShape) -> torch.Size:
    """The value core shape a raw of core shapes ``cores`` stands for, or a ``ValueError``.

    ``value_shape``, then the checks every structure shares: a non-empty value, square where
    the structure is, and ``raw_shape`` giving ``cores`` back. Cached by value (the caller
    uses ``_value_of_raw_uncached`` while compiling).
    """
    try:
        return _value_of_raw_cached(structure, cores)
    except TypeError:  # a structure with an unhashable field: not cached
        return _value_of_raw_uncached(structure, cores)


def _value_of_raw_uncached(structure: AbstractStructure[Any], cores: RawShape) -> torch.Size:
    value = structure.value_shape(cores)
    if 0 in value:
        raise ValueError(f"stands for an empty value {tuple(value)} (core dims need size >= 1)")
    if structure.square and value[-1] != value[-2]:
        raise ValueError("needs a square matrix in its last two dims")
    back = structure.raw_shape(value)
    if back != cores:
        raise ValueError(
            f"parts do not fit together: a value of core shape {tuple(value)} takes "
            f"{_form_in_words(back)}"
        )
    return value


_value_of_raw_cached = functools.lru_cache(maxsize=4096)(_value_of_raw_uncached)


def _value_of_value(structure: AbstractStructure[Any], core: torch.Size) -> None:
    """Raise a ``ValueError`` saying why a value of core shape ``core`` is refused, if it is."""
    if torch.compiler.is_compiling():
        return _value_of_value_uncached(structure, core)
    try:
        return _value_of_value_cached(structure, core)
    except TypeError:
        return _value_of_value_uncached(structure, core)


def _value_of_value_uncached(structure: AbstractStructure[Any], core: torch.Size) -> None:
    back = structure.value_shape(structure.raw_shape(core))
    if back != core and not structure.square:
        raise ValueError(f"cannot have core shape {tuple(core)}")


_value_of_value_cached = functools.lru_cache(maxsize=4096)(_value_of_value_uncached)


def raw_form_of(structure: AbstractStructure) -> RawShape:
    """The nesting and core ndims of a structure's raw: ``raw_shape`` of a 1 x ... x 1 value.

    Cached by value (structures are frozen and hash by their hyperparameters); while
    ``torch.compile`` traces, computed directly, since dynamo does not trace through caches.
    """
    if torch.compiler.is_compiling():
        return structure.raw_shape((1,) * structure.core_ndim)
    try:
        return _cached_raw_form(structure)
    except TypeError:  # a structure with an unhashable field: not cached
        return structure.raw_shape((1,) * structure.core_ndim)


@functools.lru_cache(maxsize=1024)
def _cached_raw_form(structure: AbstractStructure) -> RawShape:
    return structure.raw_shape((1,) * structure.core_ndim)


def _shapes_in_words(raw: Any, form: RawShape) -> str:
    """``"shape (3, 4)"``, or for a factored raw its parts by name: ``"left (3, 4), right ..."``."""
    if isinstance(raw, Tensor):
        return f"shape {tuple(raw.shape)}"
    return ", ".join(f"{label} {shape}".strip() for label, shape in _labelled(raw, form, ""))


def _labelled(raw: Any, form: Any, prefix: str) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, shape)`` of every tensor of a raw, named by the form's fields where it has them.

    The fields are a NamedTuple's (``LowRank``'s ``left``/``right``); unnamed parts get "".
    """
    if isinstance(raw, Tensor):
        return [(prefix, tuple(raw.shape))]
    names = getattr(form, "_fields", None) or [""] * len(raw)
    out = []
    for i, part in enumerate(raw):
        sub = form[i] if isinstance(form, tuple) and i < len(form) else None
        name = names[i] if i < len(names) else ""
        if not name and isinstance(part, tuple):  # a nested raw of an unnamed part: its index
            name = str(i)
        out += _labelled(part, sub, f"{prefix}.{name}" if prefix and name else prefix or name)
    return out


def _form_in_words(form: RawShape) -> str:
    if isinstance(form, torch.Size):
        return f"core shape {tuple(form)}"
    return "parts of core shapes " + ", ".join(str(tuple(f)) for f in leaves(form))


def finite_or_zero(x: Tensor) -> Tensor:
    """``x`` with NaN/Inf entries set to 0, for ``eigh``/``svd``, which raise on them.

    ``contains`` answers False for such values anyway; ``apply`` keeps them in its output.
    """
    return torch.where(torch.isfinite(x), x, 0.0)


def nan_where_not(keep: Tensor, raw: Any) -> Any:
    """``raw`` (a tensor or a tuple tree of them) with NaN in every batch element not ``keep``.

    ``keep`` has the batch shape; each leaf of ``raw`` has those leading dims and more.
    """
    if isinstance(raw, tuple):
        return tuple(nan_where_not(keep, part) for part in raw)
    mask = keep.reshape(keep.shape + (1,) * (raw.dim() - keep.dim()))
    return torch.where(mask, raw, torch.nan)


def close(a: Tensor, b: Tensor, atol: float, rtol: float, core_ndim: int = 2) -> Tensor:
    """Whether ``|a - b| <= atol + rtol * |b|`` everywhere in the core dims, per batch element."""
    ok = (a - b).abs() <= atol + rtol * b.abs()
    return ok.flatten(ok.dim() - core_ndim).all(-1)
