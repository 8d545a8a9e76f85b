"""The pure decision core: ``decide(state, event, now, policy) -> Decided``.

No clock, no files, no network, no randomness: everything arrives as an argument.
"""
