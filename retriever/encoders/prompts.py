"""Prompt templates of the prompt-based embedding papers, and the text normalisation they use."""

from __future__ import annotations

PROMPTS: dict[str, str] = {
    "prompteol": 'This sentence : "{text}" means in one word:"',
    "cot": 'After thinking step by step , this sentence : "{text}" means in one word:"',
    "ke": ("The essence of a sentence is often captured by its main subjects and actions, while descriptive "
           "terms provide additional but less central details. With this in mind , this sentence : "
           '"{text}" means in one word:"'),
}

# MetaEOL: eight task phrases, each in "... this sentence : "{text}" <phrase> in one word:"".
METAEOL_PHRASES = (
    "should be classified under one general category",
    "discriminates between opinion and fact",
    "reflects the sentiment",
    "conveys the emotion",
    "means",
    "means",
    "encapsulates the key fact",
    "highlights the primary entity or relation",
)
# The paper's exact task leads are not public here: these leads name each task, and the two "means"
# prompts differ by the task they introduce (paraphrase, contextual synonym).
METAEOL_LEADS = (
    "In this task, you're given a sentence. Categorize it. So",
    "In this task, you're given a sentence. Tell opinion from fact. So",
    "In this task, you're given a sentence. Judge its sentiment. So",
    "In this task, you're given a sentence. Name its emotion. So",
    "In this task, you're given a sentence. Paraphrase it. So",
    "In this task, you're given a sentence. Find a synonym for it in context. So",
    "In this task, you're given a sentence. Extract its key fact. So",
    "In this task, you're given a sentence. Find its main entity or relation. So",
)
METAEOL_TEMPLATES = tuple(f'{lead} this sentence : "{{text}}" {phrase} in one word:"'
                          for lead, phrase in zip(METAEOL_LEADS, METAEOL_PHRASES, strict=True))


def normalize(text: str) -> str:
    """PromptEOL's normalisation: the text must not close the prompt's quote, and should end a sentence."""
    text = text.strip().replace('"', "'")
    if text and text[-1] not in ".?\"'":
        text += "."
    return text
