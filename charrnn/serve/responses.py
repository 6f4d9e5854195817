"""What a completion request gets back, in OpenAI's shapes: the whole response, or its
server-sent-event chunks, built from the batcher's `Event`s.

A token is a character: `usage` counts characters, and `logprobs` lists one entry per
character, in OpenAI's legacy shape {"tokens", "token_logprobs", "top_logprobs",
"text_offset"}, the log-probabilities being the model's own (before temperature, top-k, top-p).
"""

import secrets
import time


class Choices:
    """The choices of one request as their events arrive: text, logprobs, finish reason."""

    def __init__(self, request):
        self.request = request
        count = request.streams
        self.texts = [[] for _ in range(count)]
        self.finish = [None] * count
        self.generated = [0] * count  # characters generated, stop text included
        self.logprobs = [_empty_logprobs() if request.logprobs is not None else None
                         for _ in range(count)]
        self.offsets = [0] * count  # length of each choice's text so far, echoed prompt included
        self.started = [False] * count
        self.id = "cmpl-" + secrets.token_hex(12)
        self.created = int(time.time())

    @property
    def done(self):
        return all(f is not None for f in self.finish)

    def add(self, event):
        """Take one Event; return (text, logprobs) it adds to its choice, prompt included when
        the choice echoes it and this is its first event."""
        i, r = event.index, self.request
        text, entries = event.text, list(event.logprobs)
        if not self.started[i]:
            self.started[i] = True
            if r.echo:
                prompt = r.prompts[i // r.n]
                text = prompt + text
                entries = list(event.prompt_logprobs or []) + entries
        piece = None
        if self.logprobs[i] is not None:
            piece = _logprobs(entries, self.offsets[i])
            for key, values in piece.items():
                self.logprobs[i][key] += values
        self.offsets[i] += len(text)
        self.texts[i].append(text)
        self.generated[i] += len(event.text) + len(event.stop or "")
        if event.finish:
            self.finish[i] = event.finish
            if r.sentence and event.stop:  # rnn-writer's suggestions keep their full stop
                self.texts[i].append(event.stop)
        return text, piece

    def text(self, i):
        return "".join(self.texts[i])

    def usage(self):
        prompt = sum(len(p) for p in self.request.prompts)
        completion = sum(self.generated)
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}

    def body(self):
        """The whole response, once done."""
        return {"id": self.id, "object": "text_completion", "created": self.created,
                "model": self.request.model,
                "choices": [{"text": self.text(i), "index": i, "logprobs": self.logprobs[i],
                             "finish_reason": self.finish[i]} for i in range(len(self.finish))],
                "usage": self.usage()}

    def chunk(self, index, text, logprobs, finish):
        """One server-sent event's data: what choice `index` adds."""
        return {"id": self.id, "object": "text_completion", "created": self.created,
                "model": self.request.model,
                "choices": [{"text": text, "index": index, "logprobs": logprobs,
                             "finish_reason": finish}]}

    def usage_chunk(self):
        return {"id": self.id, "object": "text_completion", "created": self.created,
                "model": self.request.model, "choices": [], "usage": self.usage()}


def _empty_logprobs():
    return {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}


def _logprobs(entries, offset):
    """OpenAI's logprobs object for entries (char, logprob, {char: logprob}) starting at
    `offset` in the choice's text."""
    out = _empty_logprobs()
    for char, logprob, top in entries:
        out["tokens"].append(char)
        out["token_logprobs"].append(logprob)
        out["top_logprobs"].append(top)
        out["text_offset"].append(offset)
        offset += len(char)
    return out
