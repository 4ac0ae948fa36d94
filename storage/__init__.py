"""Where results live: the output folder's layout (every name in it) and the row files a run
makes durable while it goes. No Beam pipeline wiring: Beam steps and the launcher call it."""
