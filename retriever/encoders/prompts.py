"""Prompt templates of the prompt-based embedding papers, and the text normalisation they use."""

from __future__ import annotations

PROMPTS: dict[str, str] = {
    "prompteol": 'This sentence : "{text}" means in one word:"',
    "cot": 'After thinking step by step , this sentence : "{text}" means in one word:"',
    "ke": ("The essence of a sentence is often captured by its main subjects and actions, while descriptive "
           "terms provide additional but less central details. With this in mind , this sentence : "
           '"{text}" means in one word:"'),
}


def normalize(text: str) -> str:
    """PromptEOL's normalisation: the text must not close the prompt's quote, and should end a sentence."""
    text = text.strip().replace('"', "'")
    if text and text[-1] not in ".?\"'":
        text += "."
    return text


def split_template(template: str) -> tuple[str, str]:
    """Prefix and suffix around {text}, tokenized apart so a long text can be cut without losing the suffix."""
    if template.count("{text}") != 1:
        raise ValueError(f"a prompt template needs exactly one {{text}}: {template!r}")
    prefix, suffix = template.split("{text}")
    return prefix, suffix
