"""The Optimizer base class: parameter groups, per-parameter state, state_dict."""
import copy
import weakref

import numpy as np

from .. import _args, _core, _creation, _dtype, autograd
from .._core import Tensor

_BOOL_HYPERS = ("nesterov", "amsgrad", "centered", "maximize")


def _hypers(owner, **values):
    """Type checks of an optimizer's hyperparameters, before their ranges are compared, so that
    SGD(lr='a') is a TypeError naming SGD and lr (Note [Argument errors])."""
    for name, v in values.items():
        if name in _BOOL_HYPERS:
            _args.boolean(v, owner, name)
        elif name == "betas":
            if not isinstance(v, (list, tuple)) or len(v) != 2:
                raise TypeError(f"{owner}(): argument 'betas' must be a pair of numbers, not {v!r:.40}")
            for b in v:
                _args.number(b, owner, name)
        elif not (isinstance(v, Tensor) and v.numel() == 1):  # a 1-element tensor lr is fine
            _args.number(v, owner, name)

# Every live optimizer, so that a compiled step can push current hyperparameters (a changed
# learning rate) into the C++ update kernels before it replays (see dagrad.compile).
_live = weakref.WeakSet()

_HYPER_FIELDS = {
    "lr": "lr", "momentum": "momentum", "dampening": "dampening", "weight_decay": "weight_decay",
    "eps": "eps", "alpha": "alpha", "lr_decay": "lr_decay", "nesterov": "nesterov",
    "amsgrad": "amsgrad", "centered": "centered", "maximize": "maximize",
}


class Optimizer:
    """Base class. Subclasses set ``_kind`` and ``_buffers`` and validate their defaults.

    State per parameter: ``step`` (a 0-d float64 tensor) and the buffers named in ``_buffers``,
    each shaped like the parameter, created at the parameter's first step.
    """

    _kind = None
    _buffers = ()

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors "
                            "or dicts, but got a Tensor")
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)
        _live.add(self)

    def add_param_group(self, param_group):
        g = dict(param_group)
        params = g["params"]
        g["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in g["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        seen = {id(p) for grp in self.param_groups for p in grp["params"]}
        if any(id(p) in seen for p in g["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        for k, v in self.defaults.items():
            g.setdefault(k, v)
        g["_hyper"] = _core.OptimHyper()
        self.param_groups.append(g)

    def _sync_hyper(self):
        for g in self.param_groups:
            h = g["_hyper"]
            for key, attr in _HYPER_FIELDS.items():
                if key in g:
                    setattr(h, attr, g[key])
            if "betas" in g:
                h.beta1, h.beta2 = float(g["betas"][0]), float(g["betas"][1])
            h.decoupled = bool(getattr(self, "_decoupled", False))

    def _state_for(self, p, group):
        st = self.state.get(p)
        if st is None:
            st = {"step": _creation.zeros((), dtype=_dtype.float64)}
            for name in self._buffers:
                st[name] = self._init_buffer(name, p, group)
            self.state[p] = st
        return st

    def _init_buffer(self, name, p, group):
        return _creation.zeros(p.shape, dtype=p.dtype)

    def zero_grad(self, set_to_none=True):
        """Clears the gradients of every parameter (to None, or to zeros in place)."""
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def step(self, closure=None):
        """Applies one update to every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with autograd.enable_grad():
                loss = closure()
        self._sync_hyper()
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self._state_for(p, g)
                _core.optim_step(self._kind, p, p.grad, [st["step"]] + [st[b] for b in self._buffers],
                                 g["_hyper"])
        return loss

    # -------------------------------------------------------------- state_dict

    def state_dict(self):
        """PyTorch's layout: {'state': {index: {...}}, 'param_groups': [{..., 'params': [index]}]}."""
        index = {}
        groups = []
        for g in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in g.items() if k not in ("params", "_hyper")}
            packed["params"] = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: _core._clone_leaf(v) for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for mine, theirs in zip(self.param_groups, groups):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match "
                                 "the size of optimizer's group")
        params = [p for g in self.param_groups for p in g["params"]]
        ids = [i for g in groups for i in g["params"]]
        old_state, self.state = self.state, {}
        for p, i in zip(params, ids):
            st = state_dict["state"].get(i, state_dict["state"].get(str(i)))
            if st is None:
                continue
            new = {}
            old = old_state.get(p, {})
            for k, v in st.items():
                arr = v.numpy() if isinstance(v, Tensor) else np.asarray(v)
                dt = _dtype.float64 if k == "step" else p.dtype
                if k != "step" and tuple(arr.shape) != tuple(p.shape):
                    raise ValueError(f"optimizer state '{k}' of shape {arr.shape} does not match the "
                                     f"parameter of shape {p.shape}")
                value = np.array(arr, dtype=_dtype._NUMPY_OF[dt])
                mine = old.get(k)
                if mine is not None and tuple(mine.shape) == value.shape and mine.dtype == dt:
                    # In place: a compiled step holds these very buffers (see dagrad.compile).
                    with autograd.no_grad():
                        mine.copy_(_creation.tensor(value, dtype=dt))
                    new[k] = mine
                else:
                    new[k] = _creation.tensor(value, dtype=dt)
            self.state[p] = new
        for mine, theirs in zip(self.param_groups, groups):
            for k, v in theirs.items():
                if k != "params":
                    mine[k] = copy.deepcopy(v)

    def __repr__(self):
        lines = [self.__class__.__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(k for k in g if k not in ("params", "_hyper")):
                lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def _check(cond, msg):
    if not cond:
        raise ValueError(msg)
