"""Client events in real time: their contract (the raw tables'), the append-only journal, the indicators kept
fresh from them, and the raw tables the next batch build merges."""
