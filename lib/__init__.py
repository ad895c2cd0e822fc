"""paypoc's small modules: one idea each, read them in the order the README's walkthrough gives."""
