"""Recurrent kernels with ONNX semantics: lstm (LSTM), gru (GRU) and rnn (RNN).

Each kernel writes all its outputs (``outs`` = Y, Y_h and, for lstm, Y_c); the
compiler drops the ones a model does not read. The input projection ``X @ W^T`` plus
the biases is one batched matmul over every time step and direction; the time loop
then does only the recurrent matmul ``H @ R^T`` and the gate math, in place where it
can. Both directions of a bidirectional op step together: the reverse direction's
projection is stored time-reversed, so step ``s`` is time ``s`` forward and
``T - 1 - s`` backward, and its outputs are un-reversed once at the end.

``sequence_lens``: time ``t`` is active for batch row ``b`` when ``t < lens[b]``; an
inactive row keeps its state and outputs zeros. Walking the reverse direction from
``T - 1`` down therefore starts each row at its own last valid step, as ONNX says.

float16 and bfloat16 compute in float32 (float64 stays float64) and round once into
the outputs. ``layout=1`` (batch first) is read and written through transposed views.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.registry import register_template

DIRECTIONS: dict[str, tuple[bool, ...]] = {"forward": (False,), "reverse": (True,),
                                           "bidirectional": (False, True)}

Activation = Callable[[Any, Any, float, float], None]


def _sigmoid(xp: Any, a: Any, alpha: float, beta: float) -> None:
    """1 / (1 + e^-a) as 0.5 * tanh(a / 2) + 0.5: no overflow for large |a|."""
    xp.multiply(a, 0.5, out=a)
    xp.tanh(a, out=a)
    xp.multiply(a, 0.5, out=a)
    xp.add(a, 0.5, out=a)


def _tanh(xp: Any, a: Any, alpha: float, beta: float) -> None:
    xp.tanh(a, out=a)


def _relu(xp: Any, a: Any, alpha: float, beta: float) -> None:
    xp.maximum(a, 0, out=a)


def _affine(xp: Any, a: Any, alpha: float, beta: float) -> None:
    xp.multiply(a, alpha, out=a)
    xp.add(a, beta, out=a)


def _leaky_relu(xp: Any, a: Any, alpha: float, beta: float) -> None:
    xp.copyto(a, a * alpha, where=a < 0)


def _thresholded_relu(xp: Any, a: Any, alpha: float, beta: float) -> None:
    xp.multiply(a, a > alpha, out=a)


def _scaled_tanh(xp: Any, a: Any, alpha: float, beta: float) -> None:
    xp.multiply(a, beta, out=a)
    xp.tanh(a, out=a)
    xp.multiply(a, alpha, out=a)


def _hard_sigmoid(xp: Any, a: Any, alpha: float, beta: float) -> None:
    _affine(xp, a, alpha, beta)
    xp.clip(a, 0, 1, out=a)


def _elu(xp: Any, a: Any, alpha: float, beta: float) -> None:
    neg = xp.minimum(a, 0)
    xp.expm1(neg, out=neg)
    xp.multiply(neg, alpha, out=neg)
    xp.copyto(a, neg, where=a < 0)


def _softsign(xp: Any, a: Any, alpha: float, beta: float) -> None:
    xp.divide(a, xp.abs(a) + 1, out=a)


def _softplus(xp: Any, a: Any, alpha: float, beta: float) -> None:
    xp.logaddexp(a, 0, out=a)


#: Lower-case name -> (function, default alpha, default beta); None: takes no such value.
ACTIVATIONS: dict[str, tuple[Activation, float | None, float | None]] = {
    "sigmoid": (_sigmoid, None, None), "tanh": (_tanh, None, None),
    "relu": (_relu, None, None), "affine": (_affine, 1.0, 0.0),
    "leakyrelu": (_leaky_relu, 0.01, None), "thresholdedrelu": (_thresholded_relu, 1.0, None),
    "scaledtanh": (_scaled_tanh, 1.0, 1.0), "hardsigmoid": (_hard_sigmoid, 0.2, 0.5),
    "elu": (_elu, 1.0, None), "softsign": (_softsign, None, None),
    "softplus": (_softplus, None, None),
}


@dataclass(frozen=True)
class Act:
    """One activation with its alpha and beta bound."""

    fn: Activation
    alpha: float
    beta: float

    def __call__(self, xp: Any, a: Any) -> None:
        self.fn(xp, a, self.alpha, self.beta)


def activation_table(where: str, names: Sequence[str], alphas: Sequence[float],
                     betas: Sequence[float], defaults: Sequence[str],
                     directions: int) -> list[list[Act]]:
    """The activations of each direction (``defaults`` when ``names`` is empty). Alphas
    and betas are consumed in order, each by the next activation that takes one (as
    onnxruntime does); when they run out, the defaults of the ONNX operators apply."""
    per = len(defaults)
    names = list(names) or list(defaults) * directions
    if len(names) != per * directions:
        raise ArgumentError(f"{where}: activations must list {per} functions per direction "
                            f"({per * directions} in all), got {len(names)}")
    alpha_left, beta_left = list(alphas), list(betas)
    acts: list[Act] = []
    for name in names:
        entry = ACTIVATIONS.get(str(name).lower())
        if entry is None:
            raise ArgumentError(f"{where}: activations must be among "
                                f"{', '.join(sorted(ACTIVATIONS))} (any case), got {name!r}")
        fn, alpha, beta = entry
        if alpha is not None and alpha_left:
            alpha = float(alpha_left.pop(0))
        if beta is not None and beta_left:
            beta = float(beta_left.pop(0))
        acts.append(Act(fn, 0.0 if alpha is None else alpha, 0.0 if beta is None else beta))
    return [acts[d * per:(d + 1) * per] for d in range(directions)]


def activate(xp: Any, acts: list[list[Act]], role: int, a: Any) -> None:
    """Apply activation ``role`` in place on ``a`` (directions first); one call when every
    direction uses the same function, else one per direction."""
    first = acts[0][role]
    if all(per[role] == first for per in acts):
        first(xp, a)
        return
    for d, per in enumerate(acts):
        per[role](xp, a[d])


def _expect(where: str, name: str, array: Any, shape: Sequence[int]) -> None:
    if array is not None and tuple(array.shape) != tuple(shape):
        raise ArgumentError(f"{where}: {name} must have shape {list(shape)}, got "
                            f"{list(array.shape)}")


@dataclass
class Recurrence:
    """What the three kernels share: sizes, the projected inputs, the mask and Y.

    ``proj`` is (D, T, B, gates * H) with reverse directions time-reversed; ``mask`` is
    (D, T, B, 1) booleans or None without sequence_lens, and ``alive`` (1, B, 1) marks
    the rows whose length is not 0; ``ys`` collects each step's output, (D, T, B, H),
    in step order.
    """

    xp: Any
    where: str
    reverse: tuple[bool, ...]
    hidden: int
    layout: int
    dtype: Any
    proj: Any
    mask: Any
    alive: Any
    ys: Any

    def state(self, initial: Any, name: str) -> Any:
        """An initial state (D, B, H) in the compute dtype: a copy of ``initial`` or zeros."""
        d, _, b, h = self.ys.shape
        if initial is None:
            return self.xp.zeros((d, b, h), self.dtype)
        a = initial.array if self.layout == 0 else initial.array.transpose(1, 0, 2)
        _expect(self.where, name, a, (d, b, h))
        return a.astype(self.dtype)

    def recurrent(self, r: Any, gates: int) -> Any:
        """R (D, gates * H, H) transposed to (D, H, gates * H), contiguous, compute dtype."""
        d, h = self.ys.shape[0], self.hidden
        _expect(self.where, "r", r.array, (d, gates * h, h))
        return self.xp.ascontiguousarray(r.array.transpose(0, 2, 1), dtype=self.dtype)

    def keep(self, s: int, new: Any, old: Any) -> Any:
        """The state after step ``s``: ``new`` where active, ``old`` elsewhere."""
        return new if self.mask is None else self.xp.where(self.mask[:, s], new, old)

    def emit(self, s: int, h: Any) -> None:
        """Record step ``s``'s hidden state as its output (zeros where inactive)."""
        if self.mask is None:
            self.ys[:, s] = h
        else:
            self.ys[:, s] = self.xp.where(self.mask[:, s], h, 0)

    def write_y(self, out: Any) -> None:
        """Y as (T, D, B, H), or (B, T, D, H) for layout 1, rounded once."""
        o = out.array if self.layout == 0 else out.array.transpose(1, 2, 0, 3)
        _expect(self.where, "Y", o, (self.ys.shape[1], *self.ys.shape[:1], *self.ys.shape[2:]))
        for d, rev in enumerate(self.reverse):
            self.xp.copyto(o[:, d], self.ys[d, ::-1] if rev else self.ys[d], casting="unsafe")

    def write_state(self, out: Any, state: Any, name: str) -> None:
        """A final state as (D, B, H), or (B, D, H) for layout 1, rounded once. Rows of
        length 0 give zeros, not their initial state, as onnxruntime does."""
        o = out.array if self.layout == 0 else out.array.transpose(1, 0, 2)
        _expect(self.where, name, o, state.shape)
        if self.alive is not None:
            state = self.xp.where(self.alive, state, 0)
        self.xp.copyto(o, state, casting="unsafe")


def setup(xp: Any, where: str, gates: int, x: Any, w: Any, b: Any, sequence_lens: Any,
          direction: str, layout: int, hidden_size: int, r: Any,
          recurrent_bias: Sequence[int] = ()) -> Recurrence:
    """Check the shapes and attributes and project the inputs: ``proj = X @ W^T + Wb + Rb``
    for every step and direction. The gate blocks listed in ``recurrent_bias`` keep their
    Rb out of the projection (GRU's linear_before_reset adds it inside the reset)."""
    if direction not in DIRECTIONS:
        raise ArgumentError(f"{where}: direction must be one of {', '.join(DIRECTIONS)}, "
                            f"got {direction!r}")
    if layout not in (0, 1):
        raise ArgumentError(f"{where}: layout must be 0 or 1, got {layout!r}")
    reverse = DIRECTIONS[direction]
    xa, wa = x.array, w.array
    if xa.ndim != 3 or wa.ndim != 3 or r.array.ndim != 3:
        raise ArgumentError(f"{where}: x, w and r must be 3-d, got shapes {list(xa.shape)}, "
                            f"{list(wa.shape)} and {list(r.array.shape)}")
    hidden = int(r.array.shape[-1])
    if hidden_size and int(hidden_size) != hidden:
        raise ArgumentError(f"{where}: hidden_size must match r's last axis {hidden}, got "
                            f"{hidden_size}")
    if layout == 1:
        xa = xa.transpose(1, 0, 2)
    steps, batch, size = xa.shape
    nd, g = len(reverse), gates * hidden
    _expect(where, "w", wa, (nd, g, size))
    dtype = np.float64 if xa.dtype == np.float64 else np.float32
    xa = xa.astype(dtype, copy=False)
    seqs = xp.stack([xa[::-1] if rev else xa for rev in reverse])
    wt = xp.ascontiguousarray(wa.transpose(0, 2, 1), dtype=dtype)
    proj = xp.matmul(seqs, wt[:, None])
    if b is not None:
        _expect(where, "b", b.array, (nd, 2 * g))
        bias = b.array.astype(dtype)
        for block in recurrent_bias:
            bias[:, g + block * hidden:g + (block + 1) * hidden] = 0
        proj += (bias[:, :g] + bias[:, g:])[:, None, None, :]
    mask = alive = None
    if sequence_lens is not None:
        lens = sequence_lens.array
        _expect(where, "sequence_lens", lens, (batch,))
        if xp is np and lens.size and (lens.min() < 0 or lens.max() > steps):
            raise ArgumentError(f"{where}: sequence_lens must be in [0, {steps}], got values "
                                f"from {lens.min()} to {lens.max()}")
        t = xp.arange(steps)
        times = xp.stack([steps - 1 - t if rev else t for rev in reverse])
        lens = lens.astype(np.int64)
        mask = (times[:, :, None] < lens[None, None, :])[..., None]
        alive = (lens > 0)[None, :, None]
    ys = xp.empty((nd, steps, batch, hidden), dtype)
    return Recurrence(xp, where, reverse, hidden, int(layout), dtype, proj, mask, alive, ys)


def _clip(xp: Any, a: Any, clip: float | None) -> None:
    """Bound an activation's input to [-clip, clip] in place (no clip: None)."""
    if clip is not None:
        xp.clip(a, -clip, clip, out=a)


def _outs(where: str, outs: Sequence[Any], names: str) -> None:
    if len(outs) != len(names.split()):
        raise ArgumentError(f"{where}: outs must be ({', '.join(names.split())}), got "
                            f"{len(outs)} tensors")


@register_template("lstm")
def lstm(xp: Any, x: Any, w: Any, r: Any, b: Any, sequence_lens: Any, initial_h: Any,
         initial_c: Any, p: Any, outs: Sequence[Any], hidden_size: int = 0,
         direction: str = "forward", activations: Sequence[str] = (),
         activation_alpha: Sequence[float] = (), activation_beta: Sequence[float] = (),
         clip: float | None = None, input_forget: int = 0, layout: int = 0) -> None:
    """ONNX LSTM, gates i, o, f, c: outs = (Y, Y_h, Y_c). Activations f, g, h per
    direction (default Sigmoid, Tanh, Tanh); peepholes p (D, 3H) in order i, o, f;
    ``input_forget`` couples the gates as f = 1 - i."""
    _outs("lstm", outs, "Y Y_h Y_c")
    run = setup(xp, "lstm", 4, x, w, b, sequence_lens, direction, layout, hidden_size, r)
    acts = activation_table("lstm", activations, activation_alpha, activation_beta,
                            ("sigmoid", "tanh", "tanh"), len(run.reverse))
    n = run.hidden
    rt = run.recurrent(r, 4)
    h, c = run.state(initial_h, "initial_h"), run.state(initial_c, "initial_c")
    peep = None
    if p is not None:
        _expect("lstm", "p", p.array, (len(run.reverse), 3 * n))
        pa = p.array.astype(run.dtype)[:, None, :]
        peep = (pa[..., :n], pa[..., n:2 * n], pa[..., 2 * n:])
    gates = xp.empty(run.proj.shape[:1] + run.proj.shape[2:], run.dtype)
    for s in range(run.proj.shape[1]):
        xp.matmul(h, rt, out=gates)
        gates += run.proj[:, s]
        i, o, f, g = (gates[..., k * n:(k + 1) * n] for k in range(4))
        if peep is not None:
            i += peep[0] * c
            if not input_forget:
                f += peep[2] * c
        _clip(xp, i, clip)
        activate(xp, acts, 0, i)
        if input_forget:
            xp.subtract(1, i, out=f)
        else:
            _clip(xp, f, clip)
            activate(xp, acts, 0, f)
        _clip(xp, g, clip)
        activate(xp, acts, 1, g)
        c_new = f * c
        c_new += i * g
        if peep is not None:
            o += peep[1] * c_new
        _clip(xp, o, clip)
        activate(xp, acts, 0, o)
        h_new = c_new.copy()
        activate(xp, acts, 2, h_new)
        h_new *= o
        run.emit(s, h_new)
        h, c = run.keep(s, h_new, h), run.keep(s, c_new, c)
    run.write_y(outs[0])
    run.write_state(outs[1], h, "Y_h")
    run.write_state(outs[2], c, "Y_c")


@register_template("gru")
def gru(xp: Any, x: Any, w: Any, r: Any, b: Any, sequence_lens: Any, initial_h: Any,
        outs: Sequence[Any], hidden_size: int = 0, direction: str = "forward",
        activations: Sequence[str] = (), activation_alpha: Sequence[float] = (),
        activation_beta: Sequence[float] = (), clip: float | None = None,
        linear_before_reset: int = 0, layout: int = 0) -> None:
    """ONNX GRU, gates z, r, h: outs = (Y, Y_h). Activations f, g per direction (default
    Sigmoid, Tanh); ``linear_before_reset`` applies the reset gate after ``H @ Rh^T + Rbh``
    instead of before the matmul."""
    _outs("gru", outs, "Y Y_h")
    run = setup(xp, "gru", 3, x, w, b, sequence_lens, direction, layout, hidden_size, r,
                recurrent_bias=(2,) if linear_before_reset else ())
    acts = activation_table("gru", activations, activation_alpha, activation_beta,
                            ("sigmoid", "tanh"), len(run.reverse))
    n = run.hidden
    rt = run.recurrent(r, 3)
    rt_zr, rt_h = xp.ascontiguousarray(rt[..., :2 * n]), xp.ascontiguousarray(rt[..., 2 * n:])
    rbh = None
    if linear_before_reset and b is not None:
        rbh = b.array.astype(run.dtype)[:, None, 5 * n:]
    h = run.state(initial_h, "initial_h")
    zr = xp.empty(run.proj.shape[:1] + run.proj.shape[2:-1] + (2 * n,), run.dtype)
    for s in range(run.proj.shape[1]):
        xp.matmul(h, rt_zr, out=zr)
        zr += run.proj[:, s, :, :2 * n]
        _clip(xp, zr, clip)
        activate(xp, acts, 0, zr)
        z, reset = zr[..., :n], zr[..., n:]
        if linear_before_reset:
            hh = xp.matmul(h, rt_h)
            if rbh is not None:
                hh += rbh
            hh *= reset
        else:
            hh = xp.matmul(reset * h, rt_h)
        hh += run.proj[:, s, :, 2 * n:]
        _clip(xp, hh, clip)
        activate(xp, acts, 1, hh)
        h_new = h - hh
        h_new *= z
        h_new += hh
        run.emit(s, h_new)
        h = run.keep(s, h_new, h)
    run.write_y(outs[0])
    run.write_state(outs[1], h, "Y_h")


@register_template("rnn")
def rnn(xp: Any, x: Any, w: Any, r: Any, b: Any, sequence_lens: Any, initial_h: Any,
        outs: Sequence[Any], hidden_size: int = 0, direction: str = "forward",
        activations: Sequence[str] = (), activation_alpha: Sequence[float] = (),
        activation_beta: Sequence[float] = (), clip: float | None = None,
        layout: int = 0) -> None:
    """ONNX RNN: H_t = f(X_t @ W^T + H_{t-1} @ R^T + Wb + Rb); outs = (Y, Y_h).
    One activation per direction (default Tanh)."""
    _outs("rnn", outs, "Y Y_h")
    run = setup(xp, "rnn", 1, x, w, b, sequence_lens, direction, layout, hidden_size, r)
    acts = activation_table("rnn", activations, activation_alpha, activation_beta,
                            ("tanh",), len(run.reverse))
    rt = run.recurrent(r, 1)
    h = run.state(initial_h, "initial_h")
    for s in range(run.proj.shape[1]):
        h_new = xp.matmul(h, rt)
        h_new += run.proj[:, s]
        _clip(xp, h_new, clip)
        activate(xp, acts, 0, h_new)
        run.emit(s, h_new)
        h = run.keep(s, h_new, h)
    run.write_y(outs[0])
    run.write_state(outs[1], h, "Y_h")
