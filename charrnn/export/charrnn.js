/* charrnn.js: a charrnn model that writes in the browser, with no server and no dependency.
 *
 * The JavaScript twin of charrnn's Python sampler (charrnn/stepper.py, charrnn/sampling.py):
 * one `step` function per cell of the cell table (charrnn/cells/), the same input lookup and
 * head, and `sample`, which picks a character from the logits as sampling.Picker does
 * (temperature, top-k, top-p, greedy; U+FFFD never generated). Arithmetic is float64 on
 * weights stored as float32 (or float16, decoded to float32).
 *
 *   const model = charrnn.load(meta, bytes);         // meta: model.json; bytes: model.bin
 *   const model = await charrnn.fromURL("model.json");
 *   await model.generate({prime: "ROMEO:", length: 300, temperature: 0.8, seed: 1});
 *   model.next("ROMEO") -> probabilities of every character (an Array in vocabulary order)
 *   model.vocab         -> the characters, in id order
 *
 * Arrays are row-major like numpy's: a weight W of shape (K, J) is W[k * J + j]; the
 * products read their weights transposed (`matvec`).
 */
(function (root) {
  "use strict";

  // ----------------------------------------------------------------------------------------
  // Shared numerics.

  /** out (J) = b (J, or null) + z (K) W (K, J): the product every layer and the head make.
   *  W comes transposed, WT (J, K), so that each output is one running sum over a
   *  contiguous row (four of them, to keep the CPU's adders busy). */
  function matvec(z, WT, K, J, b, out) {
    for (let j = 0; j < J; j++) {
      const row = j * K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, k = 0;
      for (; k + 3 < K; k += 4) {
        s0 += z[k] * WT[row + k];
        s1 += z[k + 1] * WT[row + k + 1];
        s2 += z[k + 2] * WT[row + k + 2];
        s3 += z[k + 3] * WT[row + k + 3];
      }
      for (; k < K; k++) s0 += z[k] * WT[row + k];
      out[j] = (b ? b[j] : 0) + ((s0 + s1) + (s2 + s3));
    }
    return out;
  }

  /** The transpose (J, K) of a (K, J) matrix, as float32. */
  function transpose(W, K, J) {
    const T = new Float32Array(K * J);
    for (let k = 0; k < K; k++) for (let j = 0; j < J; j++) T[j * K + k] = W[k * J + j];
    return T;
  }

  function sigmoid(x) { return 1 / (1 + Math.exp(-x)); }

  /** The largest float64 below x > 0 (Python's math.nextafter(x, 0)). */
  function below(x) {
    const view = new DataView(new ArrayBuffer(8));
    view.setFloat64(0, x);
    view.setBigUint64(0, view.getBigUint64(0) - 1n);
    return view.getFloat64(0);
  }

  // ----------------------------------------------------------------------------------------
  // One step per cell of the table. Each takes xp (G H), the layer's projected input
  // x Wx + b (the first bias), its state arrays (updated in place), its parameters p by short
  // name and a scratch buffer a (G H). Gate blocks are in the table's column order.

  /* LSTM, gate blocks [i f o g]:
   *   [i f o g] = x Wx + h Wh + b        i, f, o = sigmoid;  g = tanh
   *   c = f * c + i * g                  h = o * tanh(c)
   */
  function stepLSTM(xp, state, p, a, H) {
    const h = state[0], c = state[1];
    matvec(h, p.Wh, H, 4 * H, xp, a);
    for (let j = 0; j < H; j++) {
      const i = sigmoid(a[j]), f = sigmoid(a[H + j]), o = sigmoid(a[2 * H + j]);
      const g = Math.tanh(a[3 * H + j]);
      c[j] = f * c[j] + i * g;
      h[j] = o * Math.tanh(c[j]);
    }
  }

  /* GRU (cuDNN form), gate blocks [r z n], with XP = x Wx + bx and HP = h Wh + bh:
   *   r = sigmoid(XP_r + HP_r)     z = sigmoid(XP_z + HP_z)     n = tanh(XP_n + r * HP_n)
   *   h = (1 - z) * n + z * h
   */
  function stepGRU(xp, state, p, a, H) {
    const h = state[0];
    matvec(h, p.Wh, H, 3 * H, p.bh, a);  // HP
    for (let j = 0; j < H; j++) {
      const r = sigmoid(xp[j] + a[j]), z = sigmoid(xp[H + j] + a[H + j]);
      const n = Math.tanh(xp[2 * H + j] + r * a[2 * H + j]);
      h[j] = n + z * (h[j] - n);
    }
  }

  /* Vanilla (Elman) RNN, one block [a]:
   *   h = tanh(x Wx + h Wh + b)
   */
  function stepRNN(xp, state, p, a, H) {
    const h = state[0];
    matvec(h, p.Wh, H, H, xp, a);
    for (let j = 0; j < H; j++) h[j] = Math.tanh(a[j]);
  }

  // cell name -> [step, gate blocks G, state arrays S]; the exporter (charrnn/export) refuses
  // a cell that is not here, and tests hold these rows equal to the cell table's
  const STEPS = {
    lstm: [stepLSTM, 4, 2],
    gru: [stepGRU, 3, 1],
    rnn: [stepRNN, 1, 1],
  };

  // ----------------------------------------------------------------------------------------
  // Weights.

  /** The float32 value of each IEEE half in `bits` (a Uint16Array). */
  function decodeHalf(bits) {
    const out = new Float32Array(bits.length);
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i], sign = b & 0x8000 ? -1 : 1, e = (b >> 10) & 0x1f, m = b & 0x3ff;
      if (e === 0) out[i] = sign * m * 5.960464477539063e-8;  // subnormal: m 2^-24
      else if (e === 31) out[i] = m ? NaN : sign * Infinity;
      else out[i] = sign * (1 + m / 1024) * Math.pow(2, e - 15);
    }
    return out;
  }

  /** {name: Float32Array} of the tensors listed in meta.tensors, read from `bytes`. */
  function readTensors(meta, bytes) {
    const buffer = bytes.buffer, base = bytes.byteOffset, half = meta.dtype === "float16";
    if (!half && meta.dtype !== "float32") throw new Error("unknown weight dtype " + meta.dtype);
    const tensors = {};
    for (const t of meta.tensors) {
      const count = t.shape.reduce((x, y) => x * y, 1), size = half ? 2 : 4;
      if (t.offset + count * size > bytes.byteLength) throw new Error("model.bin is truncated");
      const raw = buffer.slice(base + t.offset, base + t.offset + count * size);
      tensors[t.name] = half ? decodeHalf(new Uint16Array(raw)) : new Float32Array(raw);
    }
    return tensors;
  }

  /** The bytes of base64 text. */
  function base64Bytes(text) {
    const bin = atob(text.replace(/\s+/g, "")), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes;
  }

  // ----------------------------------------------------------------------------------------
  // The model: layers of one cell and a softmax head over characters (charrnn/stepper.py).

  function Model(meta, bytes) {
    const cfg = meta.config, row = STEPS[cfg.cell];
    if (!row) throw new Error("charrnn.js has no step for the cell " + cfg.cell);
    const W = readTensors(meta, bytes), H = cfg.hidden_size, V = cfg.vocab_size;
    this.meta = meta;
    this.config = cfg;
    this.vocab = meta.vocab.slice();
    this._ids = new Map(this.vocab.map((ch, i) => [ch, i]));
    this._step = row[0];
    this._G = row[1];
    this._S = row[2];
    this._H = H;
    this._V = V;
    const GH = row[1] * H, first = meta.biases[0];
    this._layers = [];
    for (let l = 0; l < cfg.num_layers; l++) {
      const p = {};
      for (const name of meta.biases) p[name] = W["layers." + l + "." + name];
      p.Wh = transpose(W["layers." + l + ".Wh"], H, GH);  // (G H, H): see matvec
      if (l > 0) p.Wx = transpose(W["layers." + l + ".Wx"], H, GH);
      this._layers.push({p: p, b: p[first], xp: new Float64Array(GH)});
    }
    // layer 0's input projection is a row of E = Wx + b (one-hot input: a lookup)
    const E = this._E = new Float64Array(V * GH), Wx0 = W["layers.0.Wx"], b0 = W["layers.0." + first];
    for (let v = 0; v < V; v++) for (let j = 0; j < GH; j++) E[v * GH + j] = Wx0[v * GH + j] + b0[j];
    this._headW = transpose(W["head.W"], H, V);
    this._headb = W["head.b"];
    this._a = new Float64Array(GH);
    this.logits = new Float64Array(V);
    this.reset();
  }

  /** Zero state: per layer, S arrays of H numbers (h first). */
  Model.prototype.reset = function () {
    this.state = this._layers.map(() => Array.from({length: this._S}, () => new Float64Array(this._H)));
  };

  /** Feed character id `id`; returns the logits (V) of the next character (a reused buffer). */
  Model.prototype.step = function (id) {
    const H = this._H, GH = this._G * H;
    let below = null;
    for (let l = 0; l < this._layers.length; l++) {
      const layer = this._layers[l], xp = layer.xp;
      if (l === 0) xp.set(this._E.subarray(id * GH, (id + 1) * GH));
      else matvec(below, layer.p.Wx, H, GH, layer.b, xp);
      this._step(xp, this.state[l], layer.p, this._a, H);
      below = this.state[l][0];
    }
    return matvec(below, this._headW, H, this._V, this._headb, this.logits);
  };

  /** The ids of `text`; an Error naming the characters the model does not know. */
  Model.prototype.encode = function (text, skipUnknown) {
    const ids = [], missing = [];
    for (const ch of text) {
      const id = this._ids.get(ch);
      if (id !== undefined) ids.push(id);
      else if (!missing.includes(ch)) missing.push(ch);
    }
    if (missing.length && !skipUnknown) {
      throw new Error("the prime has " + missing.length + " character(s) the model does not " +
                      "know: " + missing.map((c) => JSON.stringify(c)).join(", "));
    }
    return ids;
  };

  /** Read the training context, then the prime (or, with neither, the start character), from
   *  the zero state, as charrnn sample does; returns the logits after the last character.
   *  The state after the context is the same every time: it is computed once and kept. */
  Model.prototype.prime = function (prime) {
    const ids = prime ? this.encode(prime) : [];
    if (!this._afterContext) {
      const context = this.encode(this.meta.context || "", true);
      this.reset();
      for (const id of context.length ? context : [this.meta.start]) this.step(id);
      this._afterContext = {state: this.state.map((arrays) => arrays.map((a) => a.slice())),
                            logits: this.logits.slice(), empty: !context.length};
    }
    const kept = this._afterContext;
    if (kept.empty && ids.length) this.reset();  // no context: the prime alone, from zeros
    else this.state = kept.state.map((arrays) => arrays.map((a) => a.slice()));
    this.logits.set(kept.logits);
    let logits = this.logits;
    for (const id of ids) logits = this.step(id);
    return logits;
  };

  // ----------------------------------------------------------------------------------------
  // Picking characters (sampling.Picker).

  /** softmax(logits): probabilities in float64, computed after subtracting the maximum. */
  function softmax(logits) {
    let max = -Infinity, total = 0;
    for (const x of logits) if (x > max) max = x;
    const p = Array.from(logits, (x) => Math.exp(x - max));
    for (const x of p) total += x;
    return p.map((x) => x / total);
  }

  /** A seeded generator of uniform numbers in [0, 1): sfc32 (Chris Doty-Humphrey's small fast
   *  counting generator), 53 bits a number. Not numpy's generator: a seed gives the same text
   *  in every browser, not the text of `charrnn sample --seed`. */
  function rng(seed) {
    let a = 0x9e3779b9, b = 0x243f6a88, c = 0xb7e15162, d = seed >>> 0;
    let hi = Math.floor(seed / 4294967296) >>> 0;
    b ^= hi;
    function next() {
      const t = (((a + b) >>> 0) + d) >>> 0;
      d = (d + 1) >>> 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) >>> 0;
      c = ((c << 21) | (c >>> 11)) >>> 0;
      c = (c + t) >>> 0;
      return t;
    }
    for (let i = 0; i < 15; i++) next();  // mix the seed in
    return function () { return ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992; };
  }

  /** Check the options of `generate` as sampling.check_options does; returns them filled in. */
  function options(opts, defaults) {
    const o = Object.assign({}, opts || {});  // null or absent: the default
    for (const [key, value] of Object.entries({prime: "", length: defaults.length,
        temperature: defaults.temperature, topK: null, topP: null, seed: null})) {
      if (o[key] === undefined || o[key] === null) o[key] = value;
    }
    if (!Number.isInteger(o.length) || o.length < 0) throw new RangeError("length must be an integer >= 0");
    if (!(o.temperature >= 0) || !isFinite(o.temperature)) throw new RangeError("temperature must be >= 0 (0 = greedy)");
    if (o.topK !== null && !(Number.isInteger(o.topK) && o.topK >= 1)) throw new RangeError("topK must be an integer >= 1");
    if (o.topP !== null && !(o.topP > 0 && o.topP <= 1)) throw new RangeError("topP must be in (0, 1]");
    if (o.seed !== null && !(Number.isInteger(o.seed) && o.seed >= 0)) throw new RangeError("seed must be an integer >= 0");
    if (typeof o.prime !== "string") throw new TypeError("prime must be a string");
    return o;
  }

  /** The id of the next character, picked from `logits` (V) as sampling.Picker.pick does:
   *  greedy (the first maximum) at temperature 0 or topK 1; else softmax(logits / temperature),
   *  top-k keeps the k most probable (ties with the k-th too), top-p then the fewest most
   *  probable reaching p, and u (uniform in [0, 1)) picks from what is kept. `banned` (or
   *  null) is never picked. */
  function sample(logits, o, u, banned) {
    const V = logits.length;
    if (o.temperature < 1e-200 || o.topK === 1) {
      let best = -1;
      for (let v = 0; v < V; v++) if (v !== banned && (best < 0 || logits[v] > logits[best])) best = v;
      return best;
    }
    let max = -Infinity;
    for (const x of logits) if (x > max) max = x;
    const z = new Float64Array(V), inv = 1 / o.temperature;
    for (let v = 0; v < V; v++) z[v] = Math.exp((logits[v] - max) * inv);
    if (banned !== null) z[banned] = 0;
    if (o.topK !== null && o.topK < V) {
      const kth = Float64Array.from(z).sort()[V - o.topK];
      for (let v = 0; v < V; v++) if (z[v] < kth) z[v] = 0;
    }
    if (o.topP !== null && o.topP < 1) {
      const order = Array.from(z.keys()).sort((x, y) => z[y] - z[x] || x - y);
      const csum = new Float64Array(V);
      let run = 0;
      for (let r = 0; r < V; r++) csum[r] = run += z[order[r]];
      let keep = 0;  // the smallest set reaching p: the first running sum >= p * total, kept
      while (keep < V && csum[keep] < o.topP * run) keep++;
      for (let r = keep + 1; r < V; r++) z[order[r]] = 0;
    }
    let total = 0;
    const cum = new Float64Array(V);
    for (let v = 0; v < V; v++) cum[v] = total += z[v];
    // the first character whose running sum exceeds u * total, kept below the total so
    // that it always lands on a character of non-zero probability
    const target = Math.min(u * total, below(total));
    for (let v = 0; v < V; v++) if (cum[v] > target) return v;
    return V - 1;
  }

  /** The generated text (a Promise; not the prime) of `length` characters after the prime.
   *  opts: prime, length, temperature, topK, topP, seed (null: a random one), onText(piece)
   *  called with the text as it is written, signal (an AbortSignal that stops it early). */
  Model.prototype.generate = async function (opts) {
    const o = options(opts, this.meta.defaults);
    const draw = rng(o.seed !== null ? o.seed : Math.floor(Math.random() * 2 ** 32));
    const greedy = o.temperature < 1e-200 || o.topK === 1, out = [];
    let logits = this.prime(o.prime), pending = "", last = Date.now();
    for (let i = 0; i < o.length; i++) {
      const id = sample(logits, o, greedy ? 0 : draw(), this.meta.banned);
      const ch = this.vocab[id];
      out.push(ch);
      pending += ch;
      if (i + 1 < o.length) logits = this.step(id);
      if (Date.now() - last > 30 || i + 1 === o.length) {  // show the text, let the page breathe
        if (o.onText && pending) o.onText(pending);
        pending = "";
        await new Promise((resolve) => setTimeout(resolve, 0));
        last = Date.now();
        if (o.signal && o.signal.aborted) break;
      }
    }
    return out.join("");
  };

  /** The probabilities of every next character (an Array in vocabulary order) after `text`,
   *  read as `generate` reads its prime (the training context first). */
  Model.prototype.next = function (text) {
    return softmax(this.prime(text || ""));
  };

  // ----------------------------------------------------------------------------------------
  // Loading.

  /** A model from model.json's object and model.bin's bytes (a Uint8Array or ArrayBuffer). */
  function load(meta, bytes) {
    return new Model(meta, bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
  }

  /** A Promise of the model whose model.json is at `url` (its weights file beside it). */
  async function fromURL(url) {
    const meta = await (await fetch(url)).json();
    const response = await fetch(new URL(meta.weights, new URL(url, location.href)));
    if (!response.ok) throw new Error("cannot read " + meta.weights + ": " + response.status);
    return load(meta, await response.arrayBuffer());
  }

  /** The model embedded in a page: model.json in element `metaId`, base64 weights in `binId`. */
  function fromPage(metaId, binId) {
    const meta = JSON.parse(document.getElementById(metaId).textContent);
    return load(meta, base64Bytes(document.getElementById(binId).textContent));
  }

  root.charrnn = {load: load, fromURL: fromURL, fromPage: fromPage, sample: sample, rng: rng,
                  softmax: softmax, STEPS: STEPS, Model: Model};
})(typeof self !== "undefined" ? self : this);
