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
