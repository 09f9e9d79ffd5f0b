"""The verbs: each module implements one operation over the store and the refs."""
