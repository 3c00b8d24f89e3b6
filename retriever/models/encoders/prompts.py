"""Prompt templates of the prompt-based embedding papers, and the text normalisation they use."""

from __future__ import annotations

# "published": the papers' normalisation, the whole prompt tokenized as one string, TP's early exit.
# "split": how indexes were encoded before (prompt and text tokenized apart, " replaced before the "." rule,
# no ? rule, TP reading the last layer): kept so those indexes encode queries exactly as their documents.
PROMPT_FORMATS = ("published", "split")

PROMPTS: dict[str, str] = {
    "prompteol": 'This sentence : "{text}" means in one word:"',
    "cot": 'After thinking step by step , this sentence : "{text}" means in one word:"',
    "ke": ("The essence of a sentence is often captured by its main subjects and actions, while descriptive "
           "terms provide additional but less central details. With this in mind , this sentence : "
           '"{text}" means in one word:"'),
}

# MetaEOL's eight task prompts, word for word from the Token Prepending authors' evaluate.py
# (docs/methods.md): a task description, then "this sentence : "{text}" <task phrase> in one word:"".
METAEOL_TEMPLATES = (
    ("In this task, you're presented with a text excerpt. Your task is to categorize the excerpt into a "
     "broad category such as 'Education', 'Technology', 'Health', 'Business', 'Environment', 'Politics', "
     "or 'Culture'. These categories help in organizing content for better accessibility and targeting. "
     'For this task, this sentence : "{text}" should be classified under one general category in one '
     'word:"'),
    ("In this task, you're given a statement and you need to determine whether it's presenting an "
     "'Opinion' or a 'Fact'. This distinction is vital for information verification, educational "
     'purposes, and content analysis. For this task, this sentence : "{text}" discriminates between '
     'opinion and fact in one word:"'),
    ("In this task, you're given a review from an online platform. Your task is to generate a rating for "
     "the product based on the review on a scale of 1-5, where 1 means 'extremely negative' and 5 means "
     "'extremely positive'. For this task, this sentence : \"{text}\" reflects the sentiment in one word:\""),
    ("In this task, you're reading a personal diary entry. Your task is to identify the predominant "
     "emotion expressed, such as joy, sadness, anger, fear, or love. For this task, this sentence : "
     '"{text}" conveys the emotion in one word:"'),
    ("In this task, you're presented with two sentences. Your task is to assess whether the sentences "
     "convey the same meaning. Use 'identical', 'similar', 'different', or 'unrelated' to describe the "
     'relationship. To enhance the performance of this task, this sentence : "{text}" means in one word:"'),
    ("In this task, you're given a sentence and a phrase. Your task is to determine if the phrase can be "
     "a contextual synonym within the given sentence. Options include 'yes', 'no', or 'partially'. To "
     'enhance the performance of this task, this sentence : "{text}" means in one word:"'),
    ("In this task, you're examining a news article. Your task is to extract the most critical fact from "
     'the article. For this task, this sentence : "{text}" encapsulates the key fact in one word:"'),
    ("In this task, you're reviewing a scientific abstract. Your task is to identify the main entities "
     "(e.g., proteins, diseases) and their relations (e.g., causes, treats). For this task, this sentence "
     ': "{text}" highlights the primary entity or relation in one word:"'),
)


def normalize(text: str) -> str:
    """The prompt papers' normalisation, in their order: end a sentence (append "." unless the text ends in
    . ? " '), never close the prompt's quote (every " becomes '), and a final ? becomes . (a question
    would ask the model to answer it rather than to sum it up)."""
    text = text.strip()
    if text and text[-1] not in ".?\"'":
        text += "."
    text = text.replace('"', "'")
    if text.endswith("?"):
        text = text[:-1] + "."
    return text


def normalize_split(text: str) -> str:
    """The normalisation of the split prompt format (indexes from before the published one): quotes
    replaced first, then "." appended; no rule for a final ?."""
    text = text.strip().replace('"', "'")
    if text and text[-1] not in ".?\"'":
        text += "."
    return text
