"""``Module``: the base class of layers, with PyTorch's registration, traversal and state_dict.

Assigning a Parameter, a Module or (for a name made by ``register_buffer``) a Tensor to an
attribute registers it in ``_parameters``, ``_modules`` or ``_buffers``, ordered dicts kept
in assignment order; that order is the order of ``parameters()`` and of ``state_dict()``.
"""
import itertools
from collections import OrderedDict, namedtuple

import numpy as np

from ... import _creation, _dtype, autograd
from ..._core import Tensor
from ..parameter import Parameter


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _addindent(s, num_spaces):
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    first = lines.pop(0)
    lines = [(num_spaces * " ") + line if line.strip() else "" for line in lines]
    return first + "\n" + "\n".join(lines)


class RemovableHandle:
    """Returned by ``register_forward_hook``; ``remove()`` unregisters the hook."""

    _next_id = itertools.count()

    def __init__(self, hooks):
        self._hooks = hooks
        self.id = next(RemovableHandle._next_id)

    def remove(self):
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _value_shape(v):
    if isinstance(v, Tensor):
        return tuple(v.shape)
    return tuple(np.shape(v))


def _parse_to(args, kwargs):
    """The dtype asked for by ``Module.to``: ``to(dtype)``, ``to(tensor)`` or ``to('cpu', dtype)``."""
    dtype = kwargs.pop("dtype", None)
    device = kwargs.pop("device", None)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, str):
            device = a
        elif a is not None:
            dtype = a
    if device is not None and str(device) != "cpu":
        raise ValueError(f"to(): dagrad runs on the CPU only, got device {device!r}")
    if dtype is not None:
        dtype = _dtype._dtype_arg(dtype)
        if not dtype.is_floating_point:
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
    return dtype


class Module:
    """Base class for all layers; subclasses set attributes in ``__init__`` and define ``forward``.

    Examples
    --------
    >>> import dagrad
    >>> from dagrad import nn
    >>> class Affine(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = nn.Parameter(dagrad.ones(2))
    ...     def forward(self, x):
    ...         return x * self.scale
    >>> [name for name, _ in Affine().named_parameters()]
    ['scale']
    """

    training: bool

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments")
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()

    def forward(self, *input):
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function')

    # ------------------------------------------------------------------------- calling

    def __call__(self, *args, **kwargs):
        for hook in tuple(self._forward_pre_hooks.values()):
            res = hook(self, args)
            if res is not None:
                args = res if isinstance(res, tuple) else (res,)
        out = self.forward(*args, **kwargs)
        for hook in tuple(self._forward_hooks.values()):
            res = hook(self, args, out)
            if res is not None:
                out = res
        return out

    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` runs before forward; a non-None result replaces the args."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` runs after forward; a non-None result replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------------- registration

    def _check_new_name(self, name, kind):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')

    def register_parameter(self, name, param):
        """Adds a parameter (or a ``None`` placeholder, as Linear's absent bias)."""
        self._check_new_name(name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(dagrad.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Adds a tensor that is state but not a parameter (BatchNorm's running_mean).

        A persistent buffer is part of ``state_dict()``; ``None`` registers a placeholder.
        """
        self._check_new_name(name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(dagrad.Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name, module):
        """Adds a child module, reachable as the attribute ``name``."""
        self._check_new_name(name, "module")
        if not isinstance(module, Module) and module is not None:
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        d = self.__dict__

        def remove_from(*dicts_or_sets):
            for ds in dicts_or_sets:
                if name in ds:
                    if isinstance(ds, dict):
                        del ds[name]
                    else:
                        ds.discard(name)

        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            remove_from(d, self._buffers, self._modules, self._non_persistent_buffers_set)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(dagrad.nn.Parameter or None expected)")
            params[name] = value
        else:
            modules = d.get("_modules")
            if isinstance(value, Module):
                if modules is None:
                    raise AttributeError("cannot assign module before Module.__init__() call")
                remove_from(d, self._parameters, self._buffers, self._non_persistent_buffers_set)
                modules[name] = value
            elif modules is not None and name in modules:
                if value is not None:
                    raise TypeError(f"cannot assign '{type(value).__name__}' as child module "
                                    f"'{name}' (dagrad.nn.Module or None expected)")
                modules[name] = value
            else:
                buffers = d.get("_buffers")
                if buffers is not None and name in buffers:
                    if value is not None and not isinstance(value, Tensor):
                        raise TypeError(f"cannot assign '{type(value).__name__}' as buffer "
                                        f"'{name}' (dagrad.Tensor or None expected)")
                    buffers[name] = value
                else:
                    object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails: the registered names live in the dicts.
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if key in d and name in d[key]:
                return d[key][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for key in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(key, ()):
                del self.__dict__[key][name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        keys = list(object.__dir__(self)) + list(self._parameters) + list(self._modules) + list(self._buffers)
        return sorted(k for k in set(keys) if not k[0].isdigit())

    # ------------------------------------------------------------------------- traversal

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """Yields (dotted name, module) for this module and every descendant, pre-order.

        A module reachable twice is yielded once unless ``remove_duplicate=False``.
        """
        if memo is None:
            memo = set()
        # Iterative pre-order walk: a deep nest of modules cannot overflow the stack.
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in memo:
                    continue
                memo.add(id(module))
            yield name, module
            children = [(k, m) for k, m in module._modules.items() if m is not None]
            for k, m in reversed(children):
                stack.append((name + ("." if name else "") + k, m))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, get_members, prefix="", recurse=True, remove_duplicate=True):
        memo = set()
        mods = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                if recurse else [(prefix, self)])
        for mod_prefix, module in mods:
            for k, v in get_members(module):
                if v is None or (remove_duplicate and id(v) in memo):
                    continue
                if remove_duplicate:
                    memo.add(id(v))
                yield mod_prefix + ("." if mod_prefix else "") + k, v

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """Yields (dotted name, parameter); a parameter shared by two modules comes once."""
        yield from self._named_members(lambda m: m._parameters.items(), prefix, recurse,
                                       remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        yield from self._named_members(lambda m: m._buffers.items(), prefix, recurse,
                                       remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target):
        """The module at a dotted path such as ``'encoder.0'``."""
        if target == "":
            return self
        mod = self
        for item in target.split("."):
            if item not in mod._modules or mod._modules[item] is None:
                raise AttributeError(f"{type(mod).__name__} has no attribute `{item}`")
            mod = mod._modules[item]
        return mod

    def get_parameter(self, target):
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._parameters:
            raise AttributeError(f"{type(mod).__name__} has no parameter `{name}`")
        return mod._parameters[name]

    def apply(self, fn):
        """Calls ``fn`` on every submodule (children first) and on self; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------------- modes, grads

    def train(self, mode=True):
        """Sets training mode on this module and every descendant; returns self."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self):
        """Sets evaluation mode (Dropout off, BatchNorm uses its running statistics)."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Resets the gradients of every parameter: to ``None``, or to zeros."""
        for p in self.parameters():
            g = p.grad
            if g is None:
                continue
            p.grad = None if set_to_none else _creation.zeros(g.shape, dtype=g.dtype)

    # ------------------------------------------------------------------------- dtype

    def _apply(self, fn):
        """Replaces every parameter ``p`` by Parameter(fn(p)) (and its grad by fn(grad)) and
        every buffer ``b`` by fn(b).

        Note [Module.to makes new parameters]: a dagrad tensor cannot change dtype in place,
        so converting a module gives it new Parameter objects; an optimizer built before the
        conversion must be built again (PyTorch swaps ``.data`` and keeps the objects).
        """
        converted = {}  # id(old parameter) -> new one, so tied parameters stay tied
        for m in self.modules():
            for k, p in m._parameters.items():
                if p is None:
                    continue
                if id(p) not in converted:
                    new = fn(p.detach())
                    if new.dtype == p.dtype:
                        converted[id(p)] = p
                    else:
                        q = Parameter(new, requires_grad=p.requires_grad)
                        if p.grad is not None:
                            q.grad = _creation.tensor(fn(p.grad.detach()), dtype=new.dtype)
                        converted[id(p)] = q
                m._parameters[k] = converted[id(p)]
            for k, b in m._buffers.items():
                if b is not None:
                    new = fn(b)
                    if new.dtype != b.dtype:
                        m._buffers[k] = _creation.tensor(new, dtype=new.dtype)
        return self

    def to(self, *args, **kwargs):
        """Converts floating-point parameters and buffers to a dtype; returns self.

        ``to(dagrad.float64)``, ``to(dtype=...)``, ``to(tensor)``; ``'cpu'`` is accepted and
        ignored. See Note [Module.to makes new parameters].
        """
        dtype = _parse_to(args, dict(kwargs))
        if dtype is None:
            return self
        return self._apply(lambda t: t.to(dtype) if t.dtype.is_floating_point else t)

    def float(self):
        return self.to(_dtype.float32)

    def double(self):
        return self.to(_dtype.float64)

    def cpu(self):
        return self

    # ------------------------------------------------------------------------- state_dict

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else b.detach()

    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        """An OrderedDict from dotted names (``'0.weight'``) to the parameters and persistent
        buffers, detached (they share storage with the module's tensors)."""
        if args:
            raise TypeError("state_dict() takes keyword arguments only")
        if destination is None:
            destination = OrderedDict()
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
        return destination

    def _local_state(self):
        """(name, tensor) of what ``_save_to_state_dict`` saves, as the live tensors."""
        out = [(k, p) for k, p in self._parameters.items() if p is not None]
        out += [(k, b) for k, b in self._buffers.items()
                if b is not None and k not in self._non_persistent_buffers_set]
        return out

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copies values from ``state_dict`` into the parameters and buffers, in place.

        Values may be dagrad tensors or anything numpy converts (numpy arrays, lists,
        numbers). Every key and shape is checked before anything is copied, so on error
        the module is unchanged.

        Parameters
        ----------
        state_dict : mapping
            From dotted names, as ``state_dict()`` makes them.
        strict : bool
            Raise RuntimeError when keys are missing or unexpected.
        assign : bool
            Replace the tensors by new ones holding the values (keeping parameters
            Parameters) instead of copying into them.

        Returns
        -------
        namedtuple (missing_keys, unexpected_keys)

        Raises
        ------
        RuntimeError
            On a shape mismatch (always) or on missing/unexpected keys (strict).
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        targets = []  # (module, local name, key, tensor, is_param)
        expected = set()
        for mod_prefix, module in self.named_modules(remove_duplicate=False):
            prefix = mod_prefix + "." if mod_prefix else ""
            for name, t in module._local_state():
                key = prefix + name
                expected.add(key)
                targets.append((module, name, key, t, name in module._parameters))
        missing = [key for _, _, key, _, _ in targets if key not in state_dict]
        unexpected = [k for k in state_dict.keys() if k not in expected]
        errors = []
        if strict:
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected)))
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in missing)))
        for _, _, key, t, _ in targets:
            if key not in state_dict:
                continue
            shape = _value_shape(state_dict[key])
            if shape != tuple(t.shape):
                errors.append(f"size mismatch for {key}: copying a param with shape {shape} from "
                              f"checkpoint, the shape in current model is {tuple(t.shape)}.")
        if errors:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(
                type(self).__name__, "\n\t".join(errors)))
        with autograd.no_grad():
            for module, name, key, t, is_param in targets:
                if key not in state_dict:
                    continue
                v = state_dict[key]
                if not isinstance(v, Tensor):
                    v = np.asarray(v)
                if assign:
                    new = _creation.tensor(v, dtype=t.dtype)
                    if is_param:
                        module._parameters[name] = Parameter(new, requires_grad=t.requires_grad)
                    else:
                        module._buffers[name] = new
                else:
                    t.copy_(v)
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------------- repr

    def extra_repr(self):
        """The text inside the parentheses of this module's one-line repr."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = []
        for key, module in self._modules.items():
            child_lines.append("(" + key + "): " + _addindent(repr(module), 2))
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"
