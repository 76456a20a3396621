"""The dataset formats LlamaDesk reads, by name, with a one-line description each (the GUI's format picker,
the config's choices and the detection's reasons share them)."""

ALPACA, SHAREGPT, OPENAI, PROMPT_COMPLETION, TEXT = "alpaca", "sharegpt", "openai", "prompt_completion", "text"
FORMATS = (ALPACA, SHAREGPT, OPENAI, PROMPT_COMPLETION, TEXT)

FORMAT_DESCRIPTIONS = {
    ALPACA: "instruction / input / output records (optional system, history)",
    SHAREGPT: "conversations of from/value turns (human, gpt, system, function_call, observation)",
    OPENAI: "OpenAI chat fine-tuning: messages of role/content",
    PROMPT_COMPLETION: "prompt / completion pairs",
    TEXT: "raw text for continued pre-training",
}

# The fields each format reads, in the order the column picker shows them, and the ones it cannot do without.
FIELDS = {
    ALPACA: ("instruction", "input", "output", "system", "history"),
    SHAREGPT: ("conversations", "tools", "system"),
    OPENAI: ("messages", "tools"),
    PROMPT_COMPLETION: ("prompt", "completion"),
    TEXT: ("text",),
}
REQUIRED = {
    ALPACA: ("instruction", "output"),
    SHAREGPT: ("conversations",),
    OPENAI: ("messages",),
    PROMPT_COMPLETION: ("prompt", "completion"),
    TEXT: ("text",),
}
# What each field holds, in a person's words (the column picker's labels).
FIELD_WORDS = {
    "instruction": "Question or task",
    "input": "Extra input (optional)",
    "output": "Answer",
    "system": "System prompt (optional)",
    "history": "Earlier turns (optional)",
    "conversations": "Conversation",
    "messages": "Messages",
    "tools": "Tools (optional)",
    "prompt": "Prompt",
    "completion": "Completion",
    "text": "Text",
}
# Each format's name in the window's format picker.
FORMAT_LABELS = {
    ALPACA: "Instructions (alpaca)",
    SHAREGPT: "Conversations (ShareGPT)",
    OPENAI: "Messages (OpenAI)",
    PROMPT_COMPLETION: "Prompt and completion",
    TEXT: "Plain text",
}
