# Copyright (c) mmwsss contributors.
"""Spatial sizes given relative to the CAM grid or the image.

A size in a config is either an absolute number of pixels (``gf_radius=4``)
or a **relative spec** ``dict(rel=f)``: the fraction ``f`` of a reference
that the component knows at run time (the side of the CAM grid it works
on, or of the input image), e.g. ``gf_radius=dict(rel=4 / 128)`` is "4
pixels on the 128-pixel stride-4 grid of a 512 crop" and resolves to 1 on
the 32-pixel grid of a 128 crop. One recipe then scales between image
sizes. Each component documents which reference each of its sizes uses.

The **side** of a non-square ``h x w`` map is ``sqrt(h w)`` (the side of
the square of the same area); counts (SLIC segments) are relative to the
area ``h w``.

A spec may carry ``min`` and ``max`` bounds (in resolved units) overriding
the component's defaults, e.g. ``dict(rel=7 / 128, min=3)``.

Resolution by kind:

- ``'float'``: ``f * ref`` (e.g. a Gaussian sigma), at least ``min``;
- ``'int'``: ``round(f * ref)`` (radii), at least ``min``;
- ``'odd'``: the odd integer nearest to ``f * ref`` (kernel and window
  sides: ``2 floor(x / 2) + 1``), at least ``min`` (raised to odd);
- ``'count'``: ``round(f * ref)`` with ``ref`` an area (superpixel counts),
  at least ``min``.

Absolute values are used as given (validated for their kind).
"""
import math
from typing import Mapping, Optional, Sequence, Union

SizeSpec = Union[int, float, Mapping]

KINDS = ('float', 'int', 'odd', 'count')

__all__ = [
    'SizeSpec', 'is_relative', 'check_size', 'resolve_size', 'grid_side'
]


def is_relative(spec) -> bool:
    """Whether ``spec`` is a relative spec ``dict(rel=...)``."""
    return isinstance(spec, Mapping)


def grid_side(shape: Sequence[int]) -> float:
    """Reference side ``sqrt(h w)`` of a map of spatial size ``(h, w)``."""
    h, w = (int(s) for s in tuple(shape)[-2:])
    return math.sqrt(h * w)


def _bound(spec: Mapping, key: str, default: Optional[float],
           name: str) -> Optional[float]:
    value = spec.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{name}: {key} must be a number, got {value!r}')
    return value


def check_size(spec: SizeSpec,
               name: str,
               kind: str = 'int',
               minimum: Optional[float] = None) -> SizeSpec:
    """Validate a size spec at construction; return it unchanged.

    Args:
        spec (int | float | dict): Absolute size or ``dict(rel=f)`` with
            optional ``min`` / ``max``.
        name (str): Name used in error messages (the config key).
        kind (str): One of ``'float'``, ``'int'``, ``'odd'``, ``'count'``.
        minimum (float, optional): Smallest allowed absolute value (also
            the default ``min`` of a relative spec).

    Returns:
        The spec, a plain ``dict`` for a relative one.

    Raises:
        ValueError: Unknown keys, a non-positive fraction, an absolute value
            of the wrong type or below ``minimum``; the message names
            ``name``.
    """
    if kind not in KINDS:
        raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
    if is_relative(spec):
        spec = dict(spec)
        unknown = set(spec) - {'rel', 'min', 'max'}
        if unknown or 'rel' not in spec:
            raise ValueError(
                f'{name}: a relative size is dict(rel=FRACTION[, min=..., '
                f'max=...]), got {spec!r}')
        rel = spec['rel']
        if isinstance(rel, bool) or not isinstance(
                rel, (int, float)) or not rel > 0 or math.isinf(rel):
            raise ValueError(f'{name}: rel must be a finite number > 0, got '
                             f'{rel!r}')
        lo = _bound(spec, 'min', minimum, name)
        hi = _bound(spec, 'max', None, name)
        if lo is not None and hi is not None and hi < lo:
            raise ValueError(f'{name}: max {hi} < min {lo}')
        return spec
    if isinstance(spec, bool) or not isinstance(spec, (int, float)):
        raise ValueError(f'{name} must be a number of pixels or '
                         f'dict(rel=FRACTION), got {spec!r}')
    if kind != 'float' and int(spec) != spec:
        raise ValueError(f'{name} must be an integer, got {spec!r}')
    if kind == 'odd' and int(spec) % 2 == 0:
        raise ValueError(f'{name} must be odd, got {spec!r}')
    if minimum is not None and spec < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {spec!r}')
    if kind == 'float' and not spec > 0:
        raise ValueError(f'{name} must be > 0, got {spec!r}')
    return spec


def resolve_size(spec: SizeSpec,
                 ref: float,
                 kind: str = 'int',
                 minimum: Optional[float] = None,
                 name: str = 'size') -> Union[int, float]:
    """Resolve a size spec against a reference length (or area).

    Args:
        spec (int | float | dict): See :func:`check_size`.
        ref (float): Reference side (:func:`grid_side`) or, for
            ``kind='count'``, area.
        kind (str): See the module docstring.
        minimum (float, optional): Default lower bound of a relative spec.
        name (str): Name used in error messages.

    Returns:
        int | float: The size in pixels (a count for ``'count'``).
    """
    spec = check_size(spec, name, kind, minimum)
    if not is_relative(spec):
        return float(spec) if kind == 'float' else int(spec)
    if not ref > 0:
        raise ValueError(f'{name}: the reference size must be > 0, got '
                         f'{ref}')
    x = spec['rel'] * float(ref)
    lo = _bound(spec, 'min', minimum, name)
    hi = _bound(spec, 'max', None, name)
    if kind == 'float':
        value = x
    elif kind == 'odd':
        value = 2 * math.floor(x / 2) + 1
    else:
        value = int(math.floor(x + 0.5))
    if hi is not None:
        value = min(value, hi)
    if lo is not None:
        value = max(value, lo)
    if kind == 'odd':
        value = int(value)
        if value % 2 == 0:
            value += 1
    elif kind != 'float':
        value = int(value)
    return value
