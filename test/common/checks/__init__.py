"""What every check shares: the subject under test, running it, choosing the output the
checks compare and closeness (running.py); what each task's head must output and the
labels it trains on (tasks.py); generation (generation.py)."""
