"""Looking inside a model: what it expects of a text, what its units and gates do while it reads,
and how far back through time its gradient reaches. Numbers only, as numpy arrays; the
terminal view (`explain.view`), the HTML page (`explain.html`) and the JSON of
`charrnn explain` are renderings of one `Explanation`.

How a text is read. Exactly as `charrnn eval` scores it (`scoring.read_stream`): one stream
from the zero state, in windows of `READ_CHUNK` characters with the state carried, so that the
mean of `nats[1:]` is eval's nats/char. Every per-character array is aligned with the text,
position i describing the moment right after text[i] was read:

    nats[i]           -ln p(text[i] | text[:i]): how surprised the model was by text[i];
                      nats[0] is NaN (nothing predicts the first character)
    top_ids[i, j]     the j-th most probable character to follow text[i] (its id), and
    top_probs[i, j]   its probability; row i predicts text[i + 1] (the last row, what follows
                      the text)
    activations[l, a] (n, H) array a (a state: h, c; or a gate: i, f, ...) of layer l after
                      reading text[i]; a gate's value is its activation (after the sigmoid/tanh)

Gradient flow through time (`measure_flow`), for windows of T characters taken from the text:
L = -ln p(x_{T+1} | x_1 .. x_T), the loss of the window's last position only, and
g_k = ||dL/dh_{T-k}|| for k = 0 .. T-1 (and for c), per layer: the total derivative, through
the recurrence and through the layers above. See `state_gradients` for the derivation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from charrnn import layers
from charrnn.errors import CharRNNError, refuse_oversized
from charrnn.explain.features import FEATURES, text_features
from charrnn.scoring import READ_CHUNK, encode_for_scoring, read_stream
from charrnn.units import bits

SATURATION = (0.1, 0.9)  # a sigmoid gate below / above these is left- / right-saturated
HORIZON_RATIO = 0.01  # the gradient-flow horizon: the first k where g_k < g_0 * this
FLOW_BATCH = 32  # gradient-flow windows run as one batch of this many streams
SPAN_LENGTH = 8  # length of the most surprising spans of the summary


class ExplainError(CharRNNError):
    """An option of `explain` that does not fit the model or the text."""


class Unit(NamedTuple):
    """One unit: index `index` of array `array` (a state such as h, or a gate) of layer `layer`."""

    layer: int
    index: int
    array: str = "h"
    kind: str = "state"  # "state" or "gate": which option names the array

    @property
    def option(self) -> str:
        """The `charrnn explain` options that show this unit."""
        return f"--unit {self.layer}:{self.index} --{self.kind} {self.array}"

    def __str__(self):
        return f"layer {self.layer} {self.array}[{self.index}]"


@dataclass
class FeatureMatch:
    """The units whose activations correlate best with one feature of `charrnn.explain.features`."""

    feature: str
    description: str
    units: list[tuple[Unit, float]]  # (unit, Pearson r), largest |r| first; [] if constant


@dataclass
class GateSaturation:
    """How often one gate of one layer sat near its ends over the text (the fractions of all
    its activations, every unit and character). tanh gates are mapped to [0, 1] first."""

    layer: int
    gate: str
    left: float  # fraction below SATURATION[0]
    right: float  # fraction above SATURATION[1]


@dataclass
class GradientFlow:
    """Mean over windows of g_k = ||dL_T / d s_{T-k}|| for each layer and state s."""

    window: int  # T
    starts: np.ndarray  # (M,) the text position of each window's first character
    norms: dict[tuple[int, str], np.ndarray]  # (layer, state) -> (T,) indexed by k

    def horizon(self, key) -> int | None:
        """The first k where g_k falls below HORIZON_RATIO g_0; None if it never does within
        the window."""
        g = self.norms[key]
        below = np.flatnonzero(g < g[0] * HORIZON_RATIO)
        return int(below[0]) if below.size else None


@dataclass
class Explanation:
    """Everything `explain` computed; per-character arrays follow the module's alignment."""

    config: object  # the model's ModelConfig
    vocab_chars: str  # the model's characters, by id
    text: str  # the characters read (n): the text, with those the model does not know
    #            skipped, or read as U+FFFD by a model that has it (as `charrnn eval` reads it)
    skipped: int  # how many characters of the text were unknown and skipped
    replaced: int  # how many were unknown and read as U+FFFD
    unknown_chars: str  # those characters, sorted and distinct
    ids: np.ndarray  # (n,) int64
    nats: np.ndarray  # (n,) float64, nats[0] = NaN
    top_ids: np.ndarray  # (n, K) int64, K = 0 when not asked for
    top_probs: np.ndarray  # (n, K) float64, each row decreasing
    span: tuple[int, int]  # the positions [start, end) the top-k view shows
    activations: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)  # (n, H)
    units: dict[Unit, np.ndarray] = field(default_factory=dict)  # (n,)
    finder: list[FeatureMatch] | None = None
    saturation: list[GateSaturation] | None = None
    gradient_flow: GradientFlow | None = None

    @property
    def nats_per_char(self) -> float:
        """The mean of nats[1:]: what `charrnn eval` reports for the same text."""
        return float(np.mean(self.nats[1:]))

    @property
    def bits_per_char(self) -> float:
        return bits(self.nats_per_char)

    def surprising_spans(self, count=3, length=SPAN_LENGTH) -> list[tuple[int, int, float]]:
        """Up to `count` non-overlapping spans of `length` characters with the highest mean
        nats, as (start, end, mean nats), most surprising first."""
        nats = np.nan_to_num(self.nats, nan=0.0)
        length = min(length, nats.size)
        sums = np.convolve(nats, np.ones(length), mode="valid")
        spans = []
        for start in np.argsort(-sums, kind="stable"):
            if all(start + length <= s or start >= e for s, e, _ in spans):
                spans.append((int(start), int(start + length), float(sums[start] / length)))
                if len(spans) == count:
                    break
        return spans

    def unit(self, unit: Unit) -> np.ndarray:
        """(n,) the activations of `unit` after each character: from `units`, or from a kept
        array of `activations`."""
        if unit in self.units:
            return self.units[unit]
        return self.activations[unit.layer, unit.array][:, unit.index]

    def to_json(self) -> dict:
        """The numbers as JSON values (README, "See inside a model"): the text and its
        per-character nats (null for the first), the summary, top-k over `span`, the kept
        unit traces, and the finder, saturation and gradient flow if computed."""
        cfg = self.config
        out = {
            "model": {"cell": cfg.cell, "num_layers": cfg.num_layers,
                      "hidden_size": cfg.hidden_size, "vocab_size": cfg.vocab_size},
            "text": self.text,
            "chars_skipped": self.skipped,
            "chars_replaced": self.replaced,
            "unknown_chars": self.unknown_chars,
            "chars_predicted": int(self.ids.size - 1),
            "nats_per_char": self.nats_per_char,
            "bits_per_char": self.bits_per_char,
            "nats": [None] + self.nats[1:].tolist(),
            "surprising_spans": [{"start": a, "end": b, "text": self.text[a:b],
                                  "nats_per_char": v} for a, b, v in self.surprising_spans()],
        }
        if self.top_ids.shape[1]:
            start, end = self.span
            out["top_k"] = {
                "start": start, "end": end, "k": self.top_ids.shape[1],
                "chars": [[self.vocab_chars[j] for j in row] for row in self.top_ids[start:end]],
                "probs": self.top_probs[start:end].tolist()}
        if self.units:
            out["units"] = [{**_unit_json(u), "min": float(v.min()), "max": float(v.max()),
                             "values": v.tolist()} for u, v in self.units.items()]
        if self.finder is not None:
            out["finder"] = [{"feature": m.feature, "description": m.description,
                              "units": [{**_unit_json(u), "r": r} for u, r in m.units]}
                             for m in self.finder]
        if self.saturation is not None:
            out["saturation"] = [vars(s).copy() for s in self.saturation]
        if self.gradient_flow is not None:
            flow = self.gradient_flow
            out["gradient_flow"] = {
                "window": flow.window, "windows": int(flow.starts.size),
                "starts": flow.starts.tolist(), "horizon_ratio": HORIZON_RATIO,
                "norms": [{"layer": layer, "state": s, "horizon": flow.horizon((layer, s)),
                           "norm": g.tolist()} for (layer, s), g in flow.norms.items()]}
        return out


def _unit_json(u: Unit) -> dict:
    return {"layer": u.layer, "index": u.index, "array": u.array, "kind": u.kind,
            "option": u.option}


# ----------------------------------------------------------------------------- checks


def make_unit(config, layer, index, state=None, gate=None) -> Unit:
    """The Unit for `--unit LAYER:INDEX` with `--state` or `--gate` (default: state h);
    ExplainError naming the valid range when the model has no such unit."""
    cell = config.cell_spec
    if state is not None and gate is not None:
        raise ExplainError("a unit is a state or a gate, not both.")
    if not 0 <= layer < config.num_layers:
        raise ExplainError(f"layer {layer} does not exist: this model's layers are 0 to "
                           f"{config.num_layers - 1}.")
    if not 0 <= index < config.hidden_size:
        raise ExplainError(f"unit {index} does not exist: each layer has {config.hidden_size} "
                           f"units, 0 to {config.hidden_size - 1}.")
    if gate is not None:
        if gate not in cell.gates:
            raise ExplainError(f"the {cell.name} cell has no gate {gate!r}; its gates are "
                               f"{', '.join(cell.gates)}.")
        return Unit(layer, index, gate, "gate")
    state = "h" if state is None else state
    if state not in cell.states:
        raise ExplainError(f"the {cell.name} cell has no state {state!r}; its states are "
                           f"{', '.join(cell.states)}.")
    return Unit(layer, index, state, "state")


def unit_centre(config, array):
    """The middle of an array's range, where a diverging colour scale turns: 0.5 for a sigmoid
    gate, 0 for the states and tanh gates."""
    cell = config.cell_spec
    return 0.5 if array in cell.gates[: cell.sigmoid_gates] else 0.0


def array_names(config, which="all"):
    """The (layer, array) pairs of `which`: "all" (states and gates), "states", or an
    iterable of pairs, checked."""
    cell = config.cell_spec
    names = {"all": cell.states + cell.gates, "states": cell.states}
    if isinstance(which, str):
        if which not in names:
            raise ExplainError(f"arrays must be 'all', 'states' or (layer, name) pairs, not "
                               f"{which!r}.")
        return [(layer, a) for layer in range(config.num_layers) for a in names[which]]
    pairs = [(int(layer), a) for layer, a in which]
    for layer, a in pairs:
        kind = "state" if a in cell.states else "gate"
        make_unit(config, layer, 0, **{kind: a})
    return pairs


def check_span(span, n):
    """(start, end) within a text of n characters; None: the first 40 (or all, if fewer)."""
    if span is None:
        return 0, min(40, n)
    start, end = span
    if not 0 <= start < end <= n:
        raise ExplainError(f"the span {start}:{end} is outside the text, which has {n:,} "
                           f"characters (positions 0:{n}).")
    return int(start), int(end)


def check_window(window, n):
    """ExplainError unless gradient-flow windows of `window` characters fit a text of n."""
    if window < 1:
        raise ExplainError(f"the gradient-flow window must be at least 1 character, not {window}.")
    if window > n - 1:
        raise ExplainError(f"a gradient-flow window of {window:,} characters needs a text of at "
                           f"least {window + 1:,} (the window and the character it predicts); "
                           f"this one has {n:,}, so use a window of at most {max(n - 1, 0):,}.")


def memory_needed(config, n, top_k=0, arrays=(), units=0, find=False, windows=0, window=0,
                  itemsize=4):
    """Rough bytes that `explain` needs for n characters: ids, nats and top-k, the kept
    activation arrays and unit traces, the finder's features, and for a batch of gradient-flow
    windows the forward's caches, the backward's buffers and the recorded gradients, about
    (2 G + 2 S + 4) H numbers per layer, step and window."""
    H, cell = config.hidden_size, config.cell_spec
    per_char = 16 + 16 * top_k + len(arrays) * H * itemsize + units * itemsize
    if find:
        per_char += 8 * len(FEATURES) + 4 * 8  # the features, and the text's code points
    per_step = config.num_layers * (2 * cell.G + 2 * len(cell.states) + 4) * H * itemsize
    return n * per_char + min(windows, FLOW_BATCH) * window * per_step


# ----------------------------------------------------------------------------- reading


def _log_softmax(model, out):
    """out (H, T) top-layer outputs -> (V, T) float64 log-probabilities of the next character:
    z = W^T h + b,  ln p = z - max z - ln sum exp(z - max z)."""
    p = model.params
    z = (np.matmul(p["head.W"].T, out) + p["head.b"][:, None]).astype(np.float64)
    z -= z.max(axis=0)
    return z - np.log(np.exp(z).sum(axis=0))


def _top_k(logp, K):
    """(K, T) ids and probabilities of the K largest entries of each column of logp (V, T),
    largest first; K <= V."""
    part = np.argpartition(-logp, K - 1, axis=0)[:K]
    vals = np.take_along_axis(logp, part, axis=0)
    order = np.argsort(-vals, axis=0, kind="stable")
    return np.take_along_axis(part, order, axis=0), np.exp(np.take_along_axis(vals, order, 0))


class _Correlation:
    """Pearson r between U activation series and F feature series, accumulated window by window
    with the pairwise update of the centred sums (Chan et al.), which stays accurate over
    millions of characters: for a window of m values with means a, b and centred sums C',
    C_xf += C'_xf + (a - mean_x)(b - mean_f) n m / (n + m), and the same for C_xx, C_ff."""

    def __init__(self, U, F):
        self.n = 0
        self.mx, self.mf = np.zeros(U), np.zeros(F)
        self.cxx, self.cff, self.cxf = np.zeros(U), np.zeros(F), np.zeros((U, F))

    def add(self, X, Fw):
        """X (U, m) activations, Fw (F, m) features of the same m characters."""
        m = X.shape[1]
        a, b = X.mean(axis=1), Fw.mean(axis=1)
        Xc, Fc = X - a[:, None], Fw - b[:, None]
        total = self.n + m
        da, db, w = a - self.mx, b - self.mf, self.n * m / total
        self.cxx += np.einsum("ut,ut->u", Xc, Xc) + da * da * w
        self.cff += np.einsum("ft,ft->f", Fc, Fc) + db * db * w
        self.cxf += Xc @ Fc.T + np.outer(da, db) * w
        self.mx += da * m / total
        self.mf += db * m / total
        self.n = total

    def r(self):
        """(U, F) Pearson r; NaN where a unit or a feature does not vary."""
        tiny = 1e-12 * max(self.n, 1)
        denom = np.sqrt(np.outer(self.cxx, self.cff))
        ok = (self.cxx[:, None] > tiny) & (self.cff[None, :] > tiny)
        return np.where(ok, self.cxf / np.where(ok, denom, 1.0), np.nan)


class _Reader:
    """What one pass over the text collects, window by window (`read` is the callback of
    `scoring.read_stream`)."""

    def __init__(self, model, text, ids, top_k, arrays, units, find, saturation, flow_starts,
                 progress):
        cfg, cell = model.config, model.cell
        n, H, L = ids.size, cfg.hidden_size, cfg.num_layers
        self.model, self.cell, self.ids, self.progress = model, cell, ids, progress
        self.nats = np.full(n, np.nan)
        K = min(top_k, cfg.vocab_size)
        self.top_ids = np.zeros((n, K), dtype=np.int64)
        self.top_probs = np.zeros((n, K))
        self.arrays = {key: np.empty((n, H), dtype=model.dtype) for key in arrays}
        self.units = {u: np.empty(n, dtype=model.dtype) for u in units}
        self.features = None
        if find:
            self.features = np.stack(list(text_features(text).values()))
            self.corr = _Correlation(L * len(cell.states) * H, len(FEATURES))
        self.counts = None
        if saturation:  # (layer, gate) -> [left, right, total]
            self.counts = {(layer, g): [0, 0, 0] for layer in range(L) for g in cell.gates}
        self.flow_starts = flow_starts
        self.flow_state = {(layer, s): np.zeros((H, flow_starts.size), dtype=model.dtype)
                           for layer in range(L) for s in cell.states}

    def read(self, start, stop, state):
        model, ids = self.model, self.ids
        out, caches, state = model.forward_layers(ids[None, start:stop], state, key="explain")
        logp = _log_softmax(model, out[:, :, 0])  # (V, T): predicts ids[start + 1 : stop + 1]
        targets = ids[start + 1 : stop + 1]
        t = np.arange(targets.size)
        self.nats[start + 1 : start + 1 + t.size] = -logp[targets, t]
        if self.top_ids.shape[1]:
            top, probs = _top_k(logp, self.top_ids.shape[1])
            self.top_ids[start:stop], self.top_probs[start:stop] = top.T, probs.T
        inner = [self.cell.internals(cache) for _, cache in caches]
        for (layer, a), kept in self.arrays.items():
            kept[start:stop] = inner[layer][a][:, :, 0]
        for u, kept in self.units.items():
            kept[start:stop] = inner[u.layer][u.array][:, u.index, 0]
        if self.features is not None:
            X = np.concatenate([inner[layer][s][:, :, 0].T for layer in range(len(inner))
                                for s in self.cell.states]).astype(np.float64)
            self.corr.add(X, self.features[:, start:stop])
        if self.counts is not None:
            self._count_saturation(inner)
        # the state after reading ids[s - 1], for each gradient-flow window starting at s
        w = np.flatnonzero((self.flow_starts > start) & (self.flow_starts <= stop))
        for (layer, s), kept in self.flow_state.items():
            kept[:, w] = inner[layer][s][self.flow_starts[w] - 1 - start, :, 0].T
        if self.progress is not None:
            self.progress(stop - start)
        return state

    def _count_saturation(self, inner):
        lo, hi = SATURATION
        for k, gate in enumerate(self.cell.gates):
            sigmoid = k < self.cell.sigmoid_gates
            for layer, arrays in enumerate(inner):
                v = arrays[gate] if sigmoid else (arrays[gate] + 1) / 2  # tanh -> [0, 1]
                count = self.counts[layer, gate]
                count[0] += int(np.count_nonzero(v < lo))
                count[1] += int(np.count_nonzero(v > hi))
                count[2] += v.size

    def finder(self, top):
        """One FeatureMatch per feature: its `top` units by |r|."""
        cfg, cell = self.model.config, self.cell
        r = self.corr.r()
        H, S = cfg.hidden_size, len(cell.states)
        matches = []
        for f, (name, description) in enumerate(FEATURES.items()):
            col = r[:, f]
            order = np.argsort(-np.nan_to_num(np.abs(col), nan=-1.0), kind="stable")[:top]
            best = [(Unit(int(u) // (S * H), int(u) % H, cell.states[int(u) // H % S]),
                     float(col[u])) for u in order if not np.isnan(col[u])]
            matches.append(FeatureMatch(name, description, best))
        return matches

    def saturation(self):
        return [GateSaturation(layer, gate, left / total, right / total)
                for (layer, gate), (left, right, total) in self.counts.items()]


def flow_starts(n, window, max_windows):
    """The first positions of at most `max_windows` non-overlapping windows of `window`
    characters, each followed by the character its last position predicts: consecutive from
    the start when that covers them all, else spread evenly over the text."""
    count = (n - 1) // window
    if count <= max_windows:
        return np.arange(count) * window
    return np.round(np.linspace(0, n - 1 - window, max_windows)).astype(np.int64)


def explain(model, vocab, text, *, top_k=0, span=None, arrays=(), units=(), find=False,
            find_top=3, saturation=False, gradient_flow=False, window=100, max_windows=64,
            progress=None) -> Explanation:
    """Read `text` through `model` (as `charrnn eval` does) and return an `Explanation`.

    top_k: K most probable next characters at every position (0: none); span: (start, end)
    of the positions the top-k view shows (None: the first 40). arrays: the (n, H) activation
    arrays to keep: "all", "states" or (layer, name) pairs; units: `Unit`s whose (n,) traces
    to keep (see `make_unit`). find: correlate every state unit of every layer with the
    features of `charrnn.explain.features` and keep the `find_top` best units of each. saturation:
    how often each gate saturates. gradient_flow: gradient norms through time over at most
    `max_windows` windows of `window` characters (see `gradient_flow`). progress(n) is called
    as characters are read. Characters the model does not know are read as `charrnn eval`
    reads them (`scoring.encode_for_scoring`): as U+FFFD by a model that has it, else
    skipped (counted in the result). Every option is checked, and the memory needed, before any work.
    """
    cfg = model.config
    if not text:
        raise ExplainError("the text is empty; give a text to explain.")
    ids, replaced = encode_for_scoring(vocab, text)
    ids = ids.astype(np.int64)
    unknown = vocab.unknown_chars(text) if ids.size < len(text) or replaced else ""
    n = ids.size
    if n < 2:
        raise ExplainError(f"the text has {n} character(s) the model knows; it needs at least 2.")
    span = check_span(span, n)
    keep = [] if arrays in ((), None) else array_names(cfg, arrays)
    units = list(dict.fromkeys(units))
    for u in units:
        make_unit(cfg, u.layer, u.index, **{u.kind: u.array})
    starts = np.zeros(0, dtype=np.int64)
    if gradient_flow:
        check_window(window, n)
        starts = flow_starts(n, window, max_windows)
    top_k = min(top_k, cfg.vocab_size)  # no more predictions than characters to predict
    refuse_oversized(memory_needed(cfg, n, top_k, keep, len(units), find, starts.size, window,
                                   model.dtype.itemsize),
                     f"explaining {n:,} characters", "explain a shorter text, or keep fewer "
                     "activations, or use a shorter gradient-flow window.")
    known = vocab.decode(ids) if unknown else text  # what was read: U+FFFD for the replaced
    reader = _Reader(model, known, ids, top_k, keep, units, find, saturation, starts, progress)
    for _ in read_stream(model, n, reader.read, READ_CHUNK):
        pass
    result = Explanation(
        config=cfg, vocab_chars=vocab.chars, text=known, skipped=len(text) - n,
        replaced=replaced, unknown_chars=unknown, ids=ids, nats=reader.nats, top_ids=reader.top_ids,
        top_probs=reader.top_probs, span=span, activations=reader.arrays, units=reader.units)
    if find:
        result.finder = reader.finder(find_top)
    if saturation:
        result.saturation = reader.saturation()
    if gradient_flow:
        state = [tuple(reader.flow_state[layer, s] for s in model.cell.states)
                 for layer in range(cfg.num_layers)]
        result.gradient_flow = measure_flow(model, ids, starts, window, state)
    return result


# ----------------------------------------------------------------------------- gradient flow


def state_gradients(model, x_ids, y_ids, state):
    """The gradient of each stream's last-position loss on every state of every layer at
    every step: {(layer, state name): (T, H, N)}.

    x_ids (N, T) inputs, y_ids (N,) the character each stream's last position should predict,
    state as `model.init_state(N)` (or carried). No dropout. With L_n = -ln softmax(z_n)[y_n],
    z_n = W^T h^top_{T,n} + b, and L = sum_n L_n (the streams do not interact, so the slice
    n of each result is dL_n/ds):

        dL/dz = softmax(z) - onehot(y)                   (V, N), the head's backward
        dL/dh^top_t = W dL/dz at t = T, 0 before         the only gradient injected
        layer l's sequence backward (`cell.backward`) records the total gradient on each of
        its states at every step, dL/ds^l_t: through step t+1 and through the layer above
        at step t, and returns dL/dXP^l, the gradient on its projected input XP = X Wx + b;
        dL/dh^{l-1}_t = Wx^l dL/dXP^l_t                  (`layers.project_backward`)
        is what layer l-1 receives from above, at every step.
    """
    cell, p = model.cell, model.params
    N, T = x_ids.shape
    out, caches, _ = model.forward_layers(x_ids, state, key="flow")
    z = (np.matmul(p["head.W"].T, out[:, -1]) + p["head.b"][:, None]).astype(np.float64)
    dz = np.exp(z - z.max(axis=0))
    dz /= dz.sum(axis=0)
    dz[y_ids, np.arange(N)] -= 1.0
    dHs = np.zeros(out.shape, dtype=model.dtype)
    dHs[:, -1] = np.matmul(p["head.W"], dz)
    grads = {}
    for layer in range(model.config.num_layers - 1, -1, -1):
        inp, cache = caches[layer]
        record = {s: np.zeros((T, *out[:, 0].shape), dtype=model.dtype) for s in cell.states}
        dXP, _, _ = cell.backward(dHs, None, cache, layout="features", record=record)
        grads.update(((layer, s), r) for s, r in record.items())
        if layer > 0:
            dHs, _, _ = layers.project_backward(dXP, inp, p[f"layers.{layer}.Wx"])
    return grads


def measure_flow(model, ids, starts, window, state):
    """GradientFlow over the windows ids[s : s + window] (s in `starts`), each predicting
    ids[s + window] from `state` (per layer, a tuple of (H, M) arrays: each window's starting
    state, column by column). g_k is averaged over the windows as norms: mean_w ||g_{k,w}||,
    not the norm of the mean gradient (gradients of different windows point anywhere)."""
    cell, L = model.cell, model.config.num_layers
    sums = {(layer, s): np.zeros(window) for layer in range(L) for s in cell.states}
    for b in range(0, starts.size, FLOW_BATCH):
        batch = starts[b : b + FLOW_BATCH]
        x = ids[batch[:, None] + np.arange(window)]
        s0 = tuple(tuple(np.ascontiguousarray(a[:, b : b + batch.size]) for a in layer_state)
                   for layer_state in state)
        for key, g in state_gradients(model, x, ids[batch + window], s0).items():
            sums[key] += np.linalg.norm(g.astype(np.float64), axis=1).sum(axis=1)[::-1]
    return GradientFlow(window, starts, {k: v / max(starts.size, 1) for k, v in sums.items()})
