"""Chat adapters: each translates one platform's events into core calls and back."""
