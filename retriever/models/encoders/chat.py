"""PromptReps' prompt: one instruction through an instruct model's own chat template, the answer begun.

PromptReps (Zhuang et al., 2024; docs/methods.md) asks an instruct LLM for the one word that represents a
passage, and reads the last position's state: its next-token logits are the sparse representation and
its hidden state the dense one. The prompt is rendered by the tokenizer's chat template (so each instruct
model gets its own special tokens) and then, like every prompt here, tokenized as one string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Wrapped, split_template, tokenize_whole
from .pooling import HiddenStatePooling

SYSTEM = "You are an AI assistant that can understand human language."
USER = ('Passage: "{text}". Use one most important word to represent the passage in retrieval task. '
        "Make sure your word is in lowercase.")
ANSWER = 'The word is: "'


class ChatPromptPooling(HiddenStatePooling):
    """The last token's state after a chat-template prompt (system, user with {text}, the answer begun)."""

    def __init__(self, name: str = "promptreps", layer: int | None = None, system: str = SYSTEM,
                 user: str = USER, answer: str = ANSWER):
        super().__init__(name, "last", (user,), layer)
        self.system, self.answer = system, answer

    def parameters(self) -> dict[str, Any]:
        return {**super().parameters(), "system": self.system, "answer": self.answer, "chat_template": True}

    def normalize(self, text: str) -> str:
        """PromptReps feeds the text as it is; only a quote that would close the prompt's is replaced."""
        return text.strip().replace('"', "'")

    def render(self, tokenizer, template: str) -> str:
        """The whole prompt as the model's chat template writes it, {text} still in place."""
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"method '{self.name}' needs an instruct model with a chat template")
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": template}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + self.answer

    def wrap(self, tokenizer, template: str | None, texts: Sequence[str]) -> list[Wrapped]:
        prefix, suffix = split_template(self.render(tokenizer, template))
        return tokenize_whole(tokenizer, prefix, texts, suffix, [],  # the template writes its own BOS, if any
                              whole=self.prompt_format == "published")
