"""The array libraries einops works on: NumPy and kiln (as Jittor). A backend
wraps the few operations the patterns are made of."""
import numpy as np

_backends = {}


def get_backend(tensor):
    """The backend for tensor's type (a kiln Var or a NumPy array)."""
    for backend_type in (JittorBackend, NumpyBackend):
        backend = _backends.get(backend_type.framework_name)
        if backend is None:
            backend = _backends[backend_type.framework_name] = backend_type()
        if backend.is_appropriate_type(tensor):
            return backend
    raise RuntimeError(f"Tensor type unknown to einops: {type(tensor).__name__} "
                       "(expected a jittor Var or a numpy.ndarray)")


class AbstractBackend:
    """The operations einops needs from an array library."""

    framework_name = None

    def is_appropriate_type(self, tensor):
        raise NotImplementedError

    def from_numpy(self, x):
        raise NotImplementedError(f"{self.framework_name} cannot make arrays from NumPy")

    def to_numpy(self, x):
        raise NotImplementedError(f"{self.framework_name} cannot export arrays to NumPy")

    def create_symbol(self, shape):
        raise NotImplementedError(f"{self.framework_name} has no symbolic tensors")

    def eval_symbol(self, symbol, input_dict):
        raise NotImplementedError(f"{self.framework_name} has no symbolic tensors")

    def arange(self, start, stop):
        raise NotImplementedError

    def shape(self, x):
        return tuple(x.shape)

    def reshape(self, x, shape):
        return x.reshape(shape)

    def transpose(self, x, axes):
        return x.transpose(axes)

    def reduce(self, x, operation, axes):
        return getattr(x, operation)(axis=tuple(axes))

    def stack_on_zeroth_dimension(self, tensors):
        raise NotImplementedError

    def add_axis(self, x, new_position):
        raise NotImplementedError

    def broadcast_to(self, x, shape):
        raise NotImplementedError

    def add_axes(self, x, n_axes, pos2len):
        """x with new axes of the given lengths at the given positions (of n_axes in
        all), repeating x along them."""
        for position in sorted(pos2len):
            x = self.add_axis(x, position)
        shape = list(self.shape(x))
        for position, length in pos2len.items():
            shape[position] = length
        return self.broadcast_to(x, tuple(shape))

    def tile(self, x, repeats):
        raise NotImplementedError

    def is_float_type(self, x):
        raise NotImplementedError

    def layers(self):
        raise NotImplementedError(f"einops has no layers for {self.framework_name}")

    def einsum(self, pattern, *x):
        raise NotImplementedError(f"einops has no einsum for {self.framework_name}")

    def __repr__(self):
        return f"<einops backend for {self.framework_name}>"


class NumpyBackend(AbstractBackend):
    framework_name = "numpy"

    def __init__(self):
        self.np = np

    def is_appropriate_type(self, tensor):
        return isinstance(tensor, np.ndarray)

    def from_numpy(self, x):
        return x

    def to_numpy(self, x):
        return x

    def arange(self, start, stop):
        return np.arange(start, stop)

    def stack_on_zeroth_dimension(self, tensors):
        return np.stack(tensors)

    def add_axis(self, x, new_position):
        return np.expand_dims(x, new_position)

    def broadcast_to(self, x, shape):
        return np.broadcast_to(x, shape)

    def tile(self, x, repeats):
        return np.tile(x, repeats)

    def is_float_type(self, x):
        return x.dtype.kind == "f"

    def einsum(self, pattern, *x):
        return np.einsum(pattern, *x)


class JittorBackend(AbstractBackend):
    framework_name = "jittor"

    def __init__(self):
        import kiln
        self.jittor = kiln

    def is_appropriate_type(self, tensor):
        return isinstance(tensor, self.jittor.Var)

    def from_numpy(self, x):
        return self.jittor.array(x)

    def to_numpy(self, x):
        return x.detach().numpy()

    def arange(self, start, stop):
        return self.jittor.arange(start, stop, dtype="int64")

    def reshape(self, x, shape):
        return self.jittor.reshape(x, tuple(shape))

    def transpose(self, x, axes):
        return x.permute(list(axes))

    def reduce(self, x, operation, axes):
        return getattr(x, operation)(dims=list(axes))

    def stack_on_zeroth_dimension(self, tensors):
        return self.jittor.stack(list(tensors))

    def add_axis(self, x, new_position):
        return self.jittor.unsqueeze(x, new_position)

    def broadcast_to(self, x, shape):
        return self.jittor.broadcast(x, shape)

    def tile(self, x, repeats):
        """NumPy's tile: x repeated as a whole `repeats[i]` times along dim i."""
        repeats = tuple(int(r) for r in repeats)
        if len(repeats) < x.ndim:
            repeats = (1,) * (x.ndim - len(repeats)) + repeats
        if len(repeats) > x.ndim:
            x = self.reshape(x, (1,) * (len(repeats) - x.ndim) + tuple(x.shape))
        for axis, r in enumerate(repeats):
            if r == 1:
                continue
            shape = tuple(x.shape)
            # a new dim of r copies in front of `axis`, merged into it: whole-block copies
            widened = self.add_axis(x, axis)
            widened = self.broadcast_to(widened, shape[:axis] + (r,) + shape[axis:])
            x = self.reshape(widened, shape[:axis] + (r * shape[axis],) + shape[axis + 1:])
        return x

    def is_float_type(self, x):
        return x.dtype.is_float

    def layers(self):
        from .layers import jittor
        return jittor

    def einsum(self, pattern, *x):
        return self.jittor.linalg.einsum(pattern, *x)
