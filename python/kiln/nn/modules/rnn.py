"""Recurrent layers: RNNCell, LSTMCell, GRUCell and the multi-layer RNN, LSTM
(with proj_size) and GRU over a sequence, plus Jittor's RNNBase they share.

Parameter names, shapes, gate order (LSTM: i, f, g, o; GRU: r, z, n) and
initialisation are torch.nn's, so a PyTorch state dict loads unchanged and the
outputs match. A layer's input-to-hidden products for every time step are one
product over the whole sequence; only the hidden-to-hidden product runs per step."""
import math
import numbers
import warnings

from ..._core import to_var, unary
from ..._create import zeros
from ..._shape import concat, reshape, split, stack, transpose, unsqueeze
from ..module import Module
from ... import init as _init
from .linear import dropout as _dropout, linear

__all__ = ["RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "RNNBase", "RNN", "LSTM", "GRU",
           "rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell"]

# rows of weight_ih / weight_hh per hidden unit: one block per gate
_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _sigmoid(x):
    return unary(x, "sigmoid", True)


def _tanh(x):
    return unary(x, "tanh", True)


def _relu(x):
    return to_var(x).maximum(0)


# ---- one time step, from the input's projection gi = x W_ih^T + b_ih ----
# (the layers compute gi for the whole sequence at once; the cells per call)

def _rnn_step(gi, h, w_hh, b_hh, activation):
    return activation(gi + linear(h, w_hh, b_hh))


def _lstm_step(gi, state, w_hh, b_hh, w_hr=None):
    h, c = state
    gates = gi + linear(h, w_hh, b_hh)
    i, f, g, o = split(gates, gates.shape[-1] // 4, -1)
    c = _sigmoid(f) * c + _sigmoid(i) * _tanh(g)
    h = _sigmoid(o) * _tanh(c)
    if w_hr is not None:
        h = linear(h, w_hr)
    return h, c


def _gru_step(gi, h, w_hh, b_hh):
    gh = linear(h, w_hh, b_hh)
    size = gi.shape[-1] // 3
    i_r, i_z, i_n = split(gi, size, -1)
    h_r, h_z, h_n = split(gh, size, -1)
    r = _sigmoid(i_r + h_r)
    z = _sigmoid(i_z + h_z)
    # the reset gate scales h W_hn^T + b_hn, bias included (PyTorch's and cuDNN's form)
    n = _tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


# ---- functional cells (x: (batch, input), states: (batch, hidden)) ----

def rnn_tanh_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    return _rnn_step(linear(x, w_ih, b_ih), h, w_hh, b_hh, _tanh)


def rnn_relu_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    return _rnn_step(linear(x, w_ih, b_ih), h, w_hh, b_hh, _relu)


def lstm_cell(x, hc, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None):
    """(h', c') of an LSTM step; gates i, f, g, o are row blocks of the weights.
    w_hr (proj, hidden) projects h' (LSTM's proj_size)."""
    return _lstm_step(linear(x, w_ih, b_ih), hc, w_hh, b_hh, w_hr)


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """h' of a GRU step; gates r, z, n are row blocks of the weights."""
    return _gru_step(linear(x, w_ih, b_ih), h, w_hh, b_hh)


def _shape_str(shape):
    return str(tuple(int(s) for s in shape))


def _check_state(layer, what, state, expected):
    state = to_var(state)
    if tuple(state.shape) != tuple(expected):
        raise ValueError(f"{layer}: expected {what} of shape {_shape_str(expected)}, got "
                         f"{_shape_str(state.shape)}")
    return state


# ---- cells ----

class RNNCellBase(Module):
    """weight_ih (gates*hidden, input), weight_hh (gates*hidden, hidden) and
    their biases, uniform in +-1/sqrt(hidden) (PyTorch's initialisation)."""

    def __init__(self, input_size, hidden_size, bias, num_chunks, dtype="float32"):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        k = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
        rows = num_chunks * hidden_size
        self.weight_ih = _init.uniform((rows, input_size), dtype, -k, k)
        self.weight_hh = _init.uniform((rows, hidden_size), dtype, -k, k)
        if bias:
            self.bias_ih = _init.uniform((rows,), dtype, -k, k)
            self.bias_hh = _init.uniform((rows,), dtype, -k, k)
        else:
            self.bias_ih = self.bias_hh = None

    def reset_parameters(self):
        k = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            _init.uniform_(p, -k, k)

    def _input(self, x):
        """x as (batch, input) and whether it had a batch dim."""
        x = to_var(x)
        name = type(self).__name__
        if x.ndim not in (1, 2):
            raise ValueError(f"{name}: expected input to be 1-D or 2-D, got {x.ndim}-D of shape "
                             f"{_shape_str(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input.size(-1) must be equal to input_size. Expected "
                             f"{self.input_size}, got {x.shape[-1]} (input of shape "
                             f"{_shape_str(x.shape)})")
        return (x, True) if x.ndim == 2 else (unsqueeze(x, 0), False)

    def _state(self, what, state, x, batched):
        """A given state as (batch, hidden), or zeros."""
        if state is None:
            return zeros((x.shape[0], self.hidden_size), dtype=x.dtype)
        expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        state = _check_state(type(self).__name__, what, state, expected)
        return state if batched else unsqueeze(state, 0)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        nl = getattr(self, "nonlinearity", "tanh")
        if nl != "tanh":
            s += f", nonlinearity={nl!r}"
        return s


class RNNCell(RNNCellBase):
    """h' = tanh (or relu) of (x W_ih^T + b_ih + h W_hh^T + b_hh)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype="float32"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r} (expected 'tanh' "
                             "or 'relu')")
        super().__init__(input_size, hidden_size, bias, 1, dtype)
        self.nonlinearity = nonlinearity

    def execute(self, input, hx=None):
        x, batched = self._input(input)
        h = self._state("hx", hx, x, batched)
        act = _tanh if self.nonlinearity == "tanh" else _relu
        h = _rnn_step(linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh,
                      act)
        return h if batched else reshape(h, (self.hidden_size,))


class LSTMCell(RNNCellBase):
    """(h', c') of one LSTM step: gates i, f, g, o; c' = f c + i g; h' = o tanh(c')."""

    def __init__(self, input_size, hidden_size, bias=True, dtype="float32"):
        super().__init__(input_size, hidden_size, bias, 4, dtype)

    def execute(self, input, hx=None):
        x, batched = self._input(input)
        if hx is None:
            h = c = self._state("h", None, x, batched)
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("LSTMCell: hx must be a pair (h, c)")
            h = self._state("hx[0] (h)", hx[0], x, batched)
            c = self._state("hx[1] (c)", hx[1], x, batched)
        h, c = _lstm_step(linear(x, self.weight_ih, self.bias_ih), (h, c), self.weight_hh,
                          self.bias_hh)
        if not batched:
            h, c = reshape(h, (self.hidden_size,)), reshape(c, (self.hidden_size,))
        return h, c


class GRUCell(RNNCellBase):
    """h' of one GRU step: r and z gates, candidate n = tanh(x W_in^T + b_in +
    r (h W_hn^T + b_hn)), h' = (1 - z) n + z h."""

    def __init__(self, input_size, hidden_size, bias=True, dtype="float32"):
        super().__init__(input_size, hidden_size, bias, 3, dtype)

    def execute(self, input, hx=None):
        x, batched = self._input(input)
        h = self._state("hx", hx, x, batched)
        h = _gru_step(linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return h if batched else reshape(h, (self.hidden_size,))


# ---- layers over a sequence ----

class RNNBase(Module):
    """A multi-layer, optionally bidirectional recurrent layer (Jittor's and
    PyTorch's RNNBase). mode: 'LSTM', 'GRU', 'RNN_TANH', 'RNN_RELU', or
    Jittor's 'RNN' with nonlinearity 'tanh' / 'relu'.

    Input (seq, batch, input_size), (batch, seq, input_size) with batch_first,
    or (seq, input_size) unbatched; the state (num_layers * num_directions,
    batch, hidden) is zeros when not given. Returns (output, h_n), or for LSTM
    (output, (h_n, c_n)), as torch.nn does: output holds the last layer's h at
    every step (both directions concatenated), h_n each layer's and
    direction's last h, ordered layer 0 forward, layer 0 reverse, layer 1 ...
    dropout applies to every layer's output but the last, in training only."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
                 nonlinearity=None, dtype="float32"):
        super().__init__()
        if mode == "RNN":
            nonlinearity = nonlinearity or "tanh"
            if nonlinearity not in ("tanh", "relu"):
                raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r} (expected 'tanh' "
                                 "or 'relu')")
            mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        if mode not in _GATES:
            raise ValueError(f"RNNBase: unknown mode {mode!r} (expected 'LSTM', 'GRU', 'RNN', "
                             "'RNN_TANH' or 'RNN_RELU')")
        name = type(self).__name__
        if (not isinstance(dropout, numbers.Number) or isinstance(dropout, bool)
                or not 0 <= dropout <= 1):
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if not isinstance(hidden_size, numbers.Integral) or hidden_size <= 0:
            raise ValueError(f"{name}: hidden_size must be a positive int, got {hidden_size!r}")
        if not isinstance(num_layers, numbers.Integral) or num_layers <= 0:
            raise ValueError(f"{name}: num_layers must be a positive int, got {num_layers!r}")
        if proj_size < 0:
            raise ValueError(f"{name}: proj_size must be 0 (no projection) or positive, got "
                             f"{proj_size}")
        if proj_size >= hidden_size:
            raise ValueError(f"{name}: proj_size ({proj_size}) has to be smaller than "
                             f"hidden_size ({hidden_size})")
        if proj_size and mode != "LSTM":
            raise ValueError(f"{name}: proj_size is supported by LSTM only")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} acts between layers, so with num_layers=1 "
                          "it has no effect")
        self.mode = mode
        self.nonlinearity = "relu" if mode == "RNN_RELU" else "tanh"
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.proj_size = proj_size

        # Created in PyTorch's order (per layer, per direction: w_ih, w_hh, b_ih,
        # b_hh, w_hr), which is the state dict's order.
        rows = _GATES[mode] * hidden_size
        real_hidden = proj_size or hidden_size
        k = 1.0 / math.sqrt(hidden_size)
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else real_hidden * self.num_directions
            for direction in range(self.num_directions):
                sfx = self._suffix(layer, direction)
                shapes = [("weight_ih", (rows, layer_in)), ("weight_hh", (rows, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (rows,)), ("bias_hh", (rows,))]
                if proj_size:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                for pname, shape in shapes:
                    setattr(self, pname + sfx, _init.uniform(shape, dtype, -k, k))
                    self._flat_weights_names.append(pname + sfx)

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @staticmethod
    def _suffix(layer, direction):
        return f"_l{layer}" + ("_reverse" if direction == 1 else "")

    @property
    def all_weights(self):
        """PyTorch's all_weights: per layer and direction, the list of its parameters."""
        per = len(self._flat_weights_names) // (self.num_layers * self.num_directions)
        flat = [getattr(self, n) for n in self._flat_weights_names]
        return [flat[i:i + per] for i in range(0, len(flat), per)]

    def flatten_parameters(self):
        """PyTorch packs the weights into one buffer for cuDNN; kiln's weights
        are always used where they are, so there is nothing to do."""

    def reset_parameters(self):
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            _init.uniform_(p, -k, k)

    # ---- one step and one direction (Jittor's call_rnn_cell / call_rnn_sequence) ----
    def _weights(self, suffix):
        return (getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix),
                getattr(self, "bias_ih" + suffix, None), getattr(self, "bias_hh" + suffix, None),
                getattr(self, "weight_hr" + suffix, None))

    def _step(self, gi, hidden, suffix):
        """(output, new hidden) of one step from gi = x W_ih^T + b_ih."""
        _, w_hh, _, b_hh, w_hr = self._weights(suffix)
        if self.mode == "LSTM":
            h, c = _lstm_step(gi, hidden, w_hh, b_hh, w_hr)
            return h, (h, c)
        if self.mode == "GRU":
            h = _gru_step(gi, hidden, w_hh, b_hh)
        else:
            act = _tanh if self.mode == "RNN_TANH" else _relu
            h = _rnn_step(gi, hidden, w_hh, b_hh, act)
        return h, h

    def call_rnn_cell(self, input, hidden, suffix):
        """One step of the layer and direction named by suffix ('_l0',
        '_l1_reverse', ...): input (batch, features) -> (output, new hidden),
        hidden being h, or (h, c) for LSTM."""
        w_ih, _, b_ih, _, _ = self._weights(suffix)
        return self._step(linear(input, w_ih, b_ih), hidden, suffix)

    def call_rnn_sequence(self, input, hidden, suffix):
        """One layer and direction over input (seq, batch, features): (outputs
        (seq, batch, hidden) in time order, last hidden). A '_reverse' suffix
        runs from the last step to the first."""
        w_ih, _, b_ih, _, _ = self._weights(suffix)
        gi = linear(input, w_ih, b_ih)            # every step's input projection at once
        steps = [reshape(g, g.shape[1:]) for g in split(gi, 1, 0)]
        order = range(len(steps) - 1, -1, -1) if suffix.endswith("_reverse") else range(len(steps))
        outputs = [None] * len(steps)
        for t in order:
            outputs[t], hidden = self._step(steps[t], hidden, suffix)
        return stack(outputs, 0), hidden

    def default_init_state(self, input):
        """Zero initial state for input (seq, batch, features)."""
        batch = input.shape[1]
        n = self.num_layers * self.num_directions
        h = zeros((n, batch, self.proj_size or self.hidden_size), dtype=input.dtype)
        if self.mode == "LSTM":
            return h, zeros((n, batch, self.hidden_size), dtype=input.dtype)
        return h

    def _initial_state(self, hx, x, batched):
        """hx checked against the expected shapes, with a batch dim."""
        if hx is None:
            return self.default_init_state(x)
        name = type(self).__name__
        n = self.num_layers * self.num_directions
        batch = (x.shape[1],) if batched else ()
        h_shape = (n,) + batch + (self.proj_size or self.hidden_size,)
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{name}: hx must be a pair (h_0, c_0)")
            h = _check_state(name, "hx[0] (h_0)", hx[0], h_shape)
            c = _check_state(name, "hx[1] (c_0)", hx[1], h_shape[:-1] + (self.hidden_size,))
            return (h, c) if batched else (unsqueeze(h, 1), unsqueeze(c, 1))
        h = _check_state(name, "hx", hx, h_shape)
        return h if batched else unsqueeze(h, 1)

    def execute(self, input, hx=None):
        name = type(self).__name__
        x = to_var(input)
        if x.ndim not in (2, 3):
            raise ValueError(f"{name}: expected input to be 2-D (unbatched) or 3-D, got "
                             f"{x.ndim}-D of shape {_shape_str(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input.size(-1) must be equal to input_size. Expected "
                             f"{self.input_size}, got {x.shape[-1]} (input of shape "
                             f"{_shape_str(x.shape)})")
        batched = x.ndim == 3
        if not batched:
            x = unsqueeze(x, 1)
        elif self.batch_first:
            x = transpose(x, 0, 1)
        if x.shape[0] == 0:
            raise ValueError(f"{name}: the input sequence is empty (input of shape "
                             f"{_shape_str(input.shape)})")
        state = self._initial_state(hx, x, batched)
        lstm = self.mode == "LSTM"
        h0, c0 = state if lstm else (state, None)

        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                hidden = (h0[k], c0[k]) if lstm else h0[k]
                y, hidden = self.call_rnn_sequence(x, hidden, self._suffix(layer, direction))
                outputs.append(y)
                if lstm:
                    h_n.append(hidden[0])
                    c_n.append(hidden[1])
                else:
                    h_n.append(hidden)
            x = outputs[0] if len(outputs) == 1 else concat(outputs, -1)
            if layer < self.num_layers - 1 and self.dropout > 0 and self.training:
                x = _dropout(x, self.dropout, True)

        output = x
        h_n = stack(h_n, 0)
        c_n = stack(c_n, 0) if lstm else None
        if not batched:
            output = reshape(output, (output.shape[0], output.shape[2]))
            h_n = reshape(h_n, (h_n.shape[0], h_n.shape[2]))
            c_n = reshape(c_n, (c_n.shape[0], c_n.shape[2])) if lstm else None
        elif self.batch_first:
            output = transpose(output, 0, 1)
        return (output, (h_n, c_n)) if lstm else (output, h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh (or relu) of (x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype="float32"):
        super().__init__("RNN", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, nonlinearity=nonlinearity, dtype=dtype)


class LSTM(RNNBase):
    """LSTM; with proj_size > 0, h is projected by weight_hr to proj_size
    features (and h_0, the output and h_n have that size)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype="float32"):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, dtype=dtype)


class GRU(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype="float32"):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype=dtype)
