"""Strict state-dict loading with an error that lists what does not fit."""

from __future__ import annotations

import torch

from ..errors import CheckpointError


def _listed(keys: list[str], limit: int = 8) -> str:
    return f"{keys[:limit]}{' ...' if len(keys) > limit else ''} ({len(keys)})"


def check_fits(
    module: torch.nn.Module,
    state: dict[str, torch.Tensor],
    what: str,
    optional: frozenset[str] = frozenset(),
) -> dict[str, torch.Tensor]:
    """Compare names and shapes only (no value is read; ``module`` may live on the meta device):
    every key must match, except the ``optional`` buffers, which may be absent. Raises
    :class:`CheckpointError` naming ``what`` with the missing, unexpected and wrongly shaped keys;
    returns ``state`` without optional keys ``module`` lacks."""
    own = module.state_dict()
    state = {k: v for k, v in state.items() if k not in optional or k in own}
    missing = sorted(set(own) - set(state) - optional)
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{what} do not fit: missing {_listed(missing)}, unexpected {_listed(unexpected)}, "
            f"wrong shape {_listed(wrong)}"
        )
    return state


def load_strict(
    module: torch.nn.Module,
    state: dict[str, torch.Tensor],
    what: str,
    optional: frozenset[str] = frozenset(),
    assign: bool = False,
) -> None:
    """Load ``state`` into ``module`` after :func:`check_fits`. ``assign``: the module takes the
    state's tensors (converted to its dtypes) instead of copying them into its own -- for a
    module built on the meta device, which has no storage to copy into."""
    state = check_fits(module, state, what, optional)
    if assign:
        own = module.state_dict()
        state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
    module.load_state_dict(state, strict=not optional, assign=assign)
