"""Long work shown on stderr (items done, tokens/s, time left) and a terminated build stopped as Ctrl-C is."""

from __future__ import annotations

import sys
import time

import click


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class Progress:
    """Items done, tokens/s (when tokens are counted) and time left on stderr: a live bar on a terminal, and
    one plain line every LOG_SECONDS elsewhere (a log file gets lines, not carriage returns)."""

    LOG_SECONDS = 30.0

    def __init__(self, total: int | None, unit: str = "doc", desc: str = "indexing"):
        self.total, self.unit, self.desc = total, unit, desc
        self.bar, self.tokens, self.started, self.done, self.logged = None, 0, 0.0, 0, 0.0
        self.live = sys.stderr.isatty()

    def __call__(self, done: int, tokens: int = 0) -> None:
        if not self.started:  # the indexer calls (0, 0) when it starts, so model loading is not counted
            self.started = self.logged = time.perf_counter()
            if self.live:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, unit=self.unit, desc=self.desc, file=sys.stderr, dynamic_ncols=True)
        self.tokens += tokens
        self.done += done
        if self.bar is not None:
            if self.tokens:
                self.bar.set_postfix_str(f"{self._rate():,.0f} tok/s", refresh=False)
            self.bar.update(done)
        elif time.perf_counter() - self.logged >= self.LOG_SECONDS:
            self.logged = time.perf_counter()
            click.echo(self._line(), err=True)

    def _rate(self) -> float:
        return self.tokens / max(time.perf_counter() - self.started, 1e-9)

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.started
        of = f"/{self.total:,}" if self.total else ""
        units = "queries" if self.unit == "query" else f"{self.unit}s"
        line = f"{self.desc}: {self.done:,}{of} {units} in {elapsed:,.0f}s"
        if self.tokens:
            line += f", {self._rate():,.0f} tokens/s"
        if self.total and self.done:
            line += f", about {elapsed * (self.total - self.done) / self.done:,.0f}s left"
        return line

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.started:
            click.echo(self._line(), err=True)
