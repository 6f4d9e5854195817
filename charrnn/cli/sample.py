"""`charrnn sample`: generate text from a checkpoint, streaming it to stdout."""

import sys

import click

from charrnn.cli.base import (_CKPT_ARG, _OUT_DIR, FiniteRange, SectionedCommand, StopText,
                              StrictChoice, StrictIntRange, _load_checkpoint, _stdout)
from charrnn.config import DEFAULT_TEMPERATURE, UNKNOWN_CHOICES


# how `sampling.check_beam` names the options in its errors
BEAM_FLAGS = {"beam": "--beam", "temperature": "--temp", "top_k": "--top-k", "top_p": "--top-p",
              "num_samples": "--num-samples"}
SAMPLE_SECTIONS = [
    ("Sampling", ["length", "temperature", "top_k", "top_p", "seed", "stop", "beam"]),
    ("Prime", ["prime", "prime_file", "encoding", "unknown"]),
    ("Output", ["num_samples", "fmt", "separator", "out_dir"]),
]


@click.command("sample", cls=SectionedCommand, option_sections=SAMPLE_SECTIONS)
@_CKPT_ARG
@click.option("--temp", "--temperature", "temperature", type=FiniteRange(min=0), default=None,
              show_default=False,
              help="Randomness: lower is safer, higher is wilder; 0 = always the most probable "
                   f"character (greedy) [default: {DEFAULT_TEMPERATURE:g}].")
@click.option("-n", "--length", type=click.IntRange(min=0), default=500,
              help="Characters to generate after the prime (with --stop: at most).")
@click.option("--prime", default=None, help="Text to start from; it is printed, then continued.")
@click.option("--prime-file", type=click.Path(dir_okay=False), default=None,
              help="Read the prime from a file.")
@click.option("--encoding", default="utf-8", help="Text encoding of --prime-file.")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Random seed: the same checkpoint, seed and options give the same text "
                   "[default: fresh randomness; the seed used is shown on stderr].")
@click.option("--top-k", type=click.IntRange(min=1), default=None,
              help="Sample only among the K most probable characters (1 = greedy).")
@click.option("--top-p", type=FiniteRange(0, 1, min_open=True), default=None,
              help="Sample only among the most probable characters whose probabilities add up "
                   "to P.")
@click.option("--stop", multiple=True, type=StopText(),
              help="End a sample as soon as its generated text ends with TEXT, which is not "
                   "printed; repeatable. Escapes: \\n, \\t, \\r, \\\\, \\xHH, \\uHHHH.")
@click.option("--beam", type=StrictIntRange(min=1), default=None, metavar="B",
              help="Beam search: print the most probable continuation found keeping the B best "
                   "(with --num-samples K <= B, the K best); deterministic. Not with --temp, "
                   "--top-k, --top-p.")
@click.option("--num-samples", type=click.IntRange(min=1), default=1,
              help="How many samples, generated together as one batch.")
@click.option("--format", "fmt", type=StrictChoice(["text", "jsonl"]), default="text",
              help="jsonl: one JSON object per sample (prime, text, stop, nats_per_char, "
                   "bits_per_char, seed, options).")
@click.option("--separator", default="---", help="The line printed between samples.")
@click.option("--unknown", type=click.Choice(UNKNOWN_CHOICES), default="error",
              help="Prime characters the model never saw: stop with an error, skip them, or "
                   "read them as U+FFFD (a model trained with --min-count or --max-vocab).")
@_OUT_DIR
@click.pass_context
def sample_command(ctx, target, temperature, length, prime, prime_file, encoding, seed, top_k,
                   top_p, stop, beam, num_samples, fmt, separator, unknown, out_dir):
    """Generate text from a checkpoint, streaming it to stdout.

    RUN|CKPT is a run (a name under --out-dir or a directory: its best.npz, else latest.npz)
    or a .npz file; without it, the newest run under --out-dir.

    stdout gets the prime, then exactly --length generated characters (with --stop, fewer
    when a stop text ends the sample), then a newline, and nothing else. Several samples
    follow one another, each after a line holding --separator. The first sample appears as
    it is generated; the others, generated in the same batch, appear when it is done. Before
    the prime, the model reads the end of a paragraph of its training text, kept in the
    checkpoint and not printed.

    --stop ends a sample early: as soon as the generated text (not the prime) ends with a
    stop text; the stop text is not printed. --beam prints its samples when the search ends.
    --format jsonl prints one JSON object per sample instead, each when it is done.

    \b
    Examples:
      charrnn sample                          500 characters from the newest run
      charrnn sample shakespeare --prime "ROMEO:" --temp 0.5 --seed 1
      charrnn sample shakespeare -n 2000 --top-p 0.9 > out.txt
      charrnn sample checkpoints/shakespeare/latest.npz --num-samples 3 -n 200
      charrnn sample shakespeare --prime "ROMEO:" --stop "\\n\\n" --beam 8
      charrnn sample shakespeare --num-samples 5 --format jsonl > samples.jsonl
    """
    import secrets
    from contextlib import nullcontext

    from tqdm import tqdm

    from charrnn.data import format_chars, read_text
    from charrnn.sampling import check_beam, generate
    from charrnn.stops import Stops

    if prime is not None and prime_file is not None:
        raise click.UsageError("give --prime or --prime-file, not both.")
    if beam is not None:
        try:
            check_beam(beam, temperature, top_k, top_p, num_samples, BEAM_FLAGS)
        except ValueError as exc:
            raise click.ClickException(f"{exc}.") from None
    if prime_file is not None:
        prime = read_text(prime_file, encoding)
    prime = prime or ""
    if seed is None and beam is None:
        seed = secrets.randbits(32)
    _, ckpt = _load_checkpoint(target, out_dir, f" (beam {beam})" if beam else f" (seed {seed})")
    for text in Stops(ckpt.vocab, stop).unmatchable:
        click.echo(f"warning: --stop {format_chars([text])} can never occur: the model does not "
                   f"know {format_chars(ckpt.vocab.unknown_chars(text), 20)}.", err=True)
    missing = ckpt.vocab.unknown_chars(prime) if unknown != "error" else ""
    if missing and (unknown == "skip" or ckpt.vocab.replacement is not None):
        click.echo(f"{'skipping' if unknown == 'skip' else 'reading as U+FFFD'} "
                   f"{len(missing)} prime character(s) the model does not know: "
                   f"{format_chars(missing, 20)}", err=True)
    searching = tqdm(total=length, unit="step", leave=False, dynamic_ncols=True,
                     file=sys.stderr, disable=None) if beam else nullcontext()
    with searching:
        stream = generate(ckpt.model, ckpt.vocab, length, temperature=temperature, top_k=top_k,
                          top_p=top_p, prime=prime, rng=seed, num_samples=num_samples,
                          unknown=unknown,
                          context=ckpt.training.sample_context if ckpt.training else "",
                          stop=stop, beam=beam, records=fmt == "jsonl",
                          progress=searching.update if beam else None)
    if fmt == "jsonl":
        _write_records(stream)
    else:
        _write_samples(stream, prime, num_samples, separator)


STREAM_FLUSH_SECONDS = 0.02  # how often a streaming sample reaches stdout


def _write_samples(stream, prime, num_samples, separator):
    """Write sample 1 as it is generated (flushed every STREAM_FLUSH_SECONDS), then the rest.
    `stream` yields what each sample adds at each position (see `sampling.generate`)."""
    import time

    rest = [[] for _ in range(num_samples - 1)]
    with _stdout() as out:
        pending = [prime]
        last = time.monotonic()
        columns = 1
        try:
            for pieces in stream:
                columns = len(pieces)  # beam search may find fewer samples than asked for
                pending.append(pieces[0])
                for column, piece in zip(rest, pieces[1:]):
                    column.append(piece)
                now = time.monotonic()
                if now - last >= STREAM_FLUSH_SECONDS:
                    out.write("".join(pending))
                    out.flush()
                    pending.clear()
                    last = now
        except KeyboardInterrupt:  # Ctrl-C: what was generated is shown, then exit 130
            out.write("".join(pending) + "\n")
            raise
        out.write("".join(pending) + "\n")
        for column in rest[:columns - 1]:
            out.write(f"{separator}\n{prime}{''.join(column)}\n")
        out.flush()


def _write_records(records):
    """Write each sample's record (see `sampling.generate`) as one line of JSON when it is done."""
    import json

    with _stdout() as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
