"""Single-stream sampling speed (characters/second): charrnn vs the same model in PyTorch.

The headline model (LSTM, 2 layers of 256, vocabulary 65, random weights), temperature 0.8,
one character at a time. Rounds alternate between charrnn and torch; medians are reported.
With --beam, beam search instead, for each width given: characters of the best continuation
per second (each step advances all B streams).

    python benchmarks/bench_sample.py [--length 5000] [--rounds 3] [--layers 2] [--hidden 256]
    python benchmarks/bench_sample.py --beam 1 4 16
"""

import argparse
import statistics
import time

VOCAB = 65


def ours(length, H, L, cell, beam=None):
    import numpy as np

    from charrnn.data import Vocab
    from charrnn.model import CharRNN, ModelConfig
    from charrnn.sampling import generate

    vocab = Vocab("".join(chr(32 + i) for i in range(VOCAB)))
    model = CharRNN(ModelConfig(cell, VOCAB, H, L), seed=0)
    options = {"beam": beam} if beam else {"temperature": 0.8, "rng": np.random.default_rng(0)}
    t0 = time.perf_counter()
    for _ in generate(model, vocab, length, **options):
        pass
    return length / (time.perf_counter() - t0)


def torch_sampler(length, H, L, cell):
    import torch

    torch.manual_seed(0)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](VOCAB, H, L)
    head = torch.nn.Linear(H, VOCAB)
    eye = torch.eye(VOCAB)
    state, char = None, 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for _ in range(length):
            out, state = rnn(eye[char].view(1, 1, VOCAB), state)
            probs = torch.softmax(head(out[0, 0]) / 0.8, dim=-1)
            char = int(torch.multinomial(probs, 1))
    return length / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    ap.add_argument("--beam", type=int, nargs="+", metavar="B", help="beam search widths")
    args = ap.parse_args()
    if args.beam:
        speeds = {b: [] for b in args.beam}
        for _ in range(args.rounds):  # widths interleaved, so that load hits all alike
            for b in args.beam:
                speeds[b].append(ours(args.length, args.hidden, args.layers, args.cell, b))
        for b, values in speeds.items():
            print(f"beam {b:<4d} {statistics.median(values):9,.0f} chars/s   (rounds: "
                  + ", ".join(f"{v:,.0f}" for v in values) + ")")
        return
    try:
        import torch

        torch.set_num_threads(1)  # faster than 2 for one vector at a time
        kinds = {"ours": ours, "torch": torch_sampler}
    except ImportError:
        kinds = {"ours": ours}
    speeds = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for kind, fn in kinds.items():
            speeds[kind].append(fn(args.length, args.hidden, args.layers, args.cell))
    for kind, values in speeds.items():
        print(f"{kind:6s} {statistics.median(values):9,.0f} chars/s   (rounds: "
              + ", ".join(f"{v:,.0f}" for v in values) + ")")
    if "torch" in speeds:
        print(f"ratio  {statistics.median(speeds['ours']) / statistics.median(speeds['torch']):.1f}")


if __name__ == "__main__":
    main()
